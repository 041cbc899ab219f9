"""Live state of a served index: the write path and ``LiveIndex`` (``writer``: load, replay,
watch, follow other processes' writes, upsert, delete, fold), acknowledged deletes shared by
a server's processes (``changecounter``), and the answers cached per index generation
(``result_cache``).

May import ``lists`` and everything below it.
"""
