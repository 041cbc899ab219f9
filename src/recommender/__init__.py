"""recommender: related stories and reader recommendations for news sites.

Articles in many languages are embedded with sentence-transformers into one multilingual
vector space (by default Google's USE multilingual v3, shipped on PyPI) and searched with FAISS.
"""

__version__ = "0.1.0"
