"""A multilingual test set built from hand-written news sentences and systematic variants."""

from __future__ import annotations

import itertools

BASE: dict[str, list[str]] = {
    "ar": [
        "ليبيا توقع مذكرات تفاهم أمنية وعسكرية مع تركيا وقطر ومالطا",
        "زيارة وزير الخارجية الألماني إلى طرابلس: ماذا تعني؟",
        "في ووهان حيث بدأ كورونا، الحياة تعود إلى طبيعتها",
        "ارتفعت أسعار النفط بنسبة ٣٪ بعد قرار أوبك خفض الإنتاج",
        "فاز المنتخب المغربي على نظيره البرتغالي بهدف نظيف",
        "أعلنت وزارة الصحة عن حملة تطعيم جديدة ضد الحصبة في المدارس",
    ],
    "en": [
        "Libya signs security and military memoranda with Turkey, Qatar and Malta",
        "The German foreign minister's visit to Tripoli: what does it signal?",
        "In Wuhan, where corona began, life returns to normal",
        "Oil prices rose 3% after OPEC agreed to cut production",
        "The central bank held interest rates at 5.25 percent on Thursday",
        "Scientists discover a new species of frog in the Amazon rainforest",
    ],
    "de": [
        "Libyen unterzeichnet Sicherheitsabkommen mit der Türkei, Katar und Malta",
        "Der Besuch des deutschen Außenministers in Tripolis: Was bedeutet er?",
        "Die Bundesregierung hat am Montag ein neues Klimaschutzgesetz beschlossen",
        "Der FC Bayern München gewann das Spiel mit 3:1 gegen Dortmund",
        "Die Inflation in der Eurozone ist im Mai auf 2,6 Prozent gestiegen",
        "Straßenbahnfahrer streiken für höhere Löhne und kürzere Arbeitszeiten",
    ],
    "fr": [
        "La Libye signe des protocoles de sécurité avec la Turquie, le Qatar et Malte",
        "À Wuhan, où le coronavirus est apparu, la vie reprend son cours normal",
        "Le président français a reçu son homologue égyptien à l'Élysée",
        "Les prix de l'immobilier ont baissé de 4 % à Paris l'an dernier",
        "L'équipe de France s'est qualifiée pour la finale de la Coupe du monde",
        "Une grève des contrôleurs aériens perturbe les vols à Marseille",
    ],
    "es": [
        "Libia firma memorandos de seguridad y defensa con Turquía, Catar y Malta",
        "El ministro alemán de Exteriores visita Trípoli en plena crisis política",
        "En Wuhan, donde comenzó el coronavirus, la vida vuelve a la normalidad",
        "El Real Madrid venció al Barcelona por dos goles a uno en el Bernabéu",
        "El Gobierno aprobó una subida del salario mínimo del 5 por ciento",
        "Los incendios forestales obligan a evacuar a miles de personas en Valencia",
    ],
    "tr": [
        "Libya, Türkiye, Katar ve Malta ile güvenlik mutabakatları imzaladı",
        "Almanya Dışişleri Bakanı'nın Trablus ziyareti ne anlama geliyor?",
        "Koronavirüsün başladığı Vuhan'da hayat normale dönüyor",
        "Merkez Bankası politika faizini yüzde 50'de sabit tuttu",
        "İstanbul'da şiddetli yağış nedeniyle bazı yollar trafiğe kapandı",
        "Galatasaray, Fenerbahçe'yi 2-0 yenerek liderliğini sürdürdü",
    ],
    "ru": [
        "Ливия подписала меморандумы о безопасности с Турцией, Катаром и Мальтой",
        "Визит министра иностранных дел Германии в Триполи: что он означает?",
        "В Ухане, где начался коронавирус, жизнь возвращается в норму",
        "Центральный банк повысил ключевую ставку до 16 процентов",
        "Сборная России по хоккею обыграла Канаду в финале турнира",
        "В Москве открылась новая станция метро на Большой кольцевой линии",
    ],
    "zh": [
        "利比亚与土耳其、卡塔尔和马耳他签署安全和军事谅解备忘录",
        "德国外长访问的黎波里：这意味着什么？",
        "在新冠疫情开始的武汉，生活恢复正常",
        "国际油价在欧佩克宣布减产后上涨百分之三",
        "中国国家足球队在世界杯预选赛中战胜了对手",
        "科学家在亚马逊雨林发现了一种新的青蛙",
    ],
    "it": [
        "La Libia firma memorandum di sicurezza con Turchia, Qatar e Malta",
        "A Wuhan, dove è iniziato il coronavirus, la vita torna alla normalità",
        "Il governo italiano ha approvato la legge di bilancio per il 2024",
    ],
    "pl": [
        "Libia podpisała memoranda o bezpieczeństwie z Turcją, Katarem i Maltą",
        "W Wuhanie, gdzie zaczął się koronawirus, życie wraca do normy",
        "Rząd zapowiedział podwyżkę płacy minimalnej od stycznia",
    ],
    "ja": ["リビアはトルコ、カタール、マルタと安全保障の覚書に署名した"],
    "ko": ["리비아는 터키, 카타르, 몰타와 안보 양해각서에 서명했다"],
}

EMOJI = ["😀", "🇱🇾", "⚽", "🔥", "👍🏽", "📰"]


def variants(text: str, other: str, i: int) -> list[str]:
    """Systematic variants of one sentence: numbers, emoji, HTML entities, scripts, lengths."""
    long_text = " ".join(itertools.islice(itertools.cycle([text, other]), 400))[:5000]
    return [
        text,
        f"{text} 2024-03-{i % 28 + 1:02d}, 12:45, 1,250,000 $ (+3.7%) #{i}",
        f"{EMOJI[i % len(EMOJI)]} {text} {EMOJI[(i + 1) % len(EMOJI)]}",
        f"<p>{text} &amp; &quot;more&quot; &#1604;&#1610;&#1576;&#1610;&#1575; &nbsp;</p>",
        f"{text} — {other}",
        text[:1],
        text[: 10 + i % 20],
        long_text,
    ]


def build() -> list[tuple[str, str]]:
    """(language, text) pairs: every base sentence in every variant."""
    languages = list(BASE)
    out: list[tuple[str, str]] = []
    counter = 0
    for li, lang in enumerate(languages):
        other_lang = languages[(li + 3) % len(languages)]
        for si, sentence in enumerate(BASE[lang]):
            other = BASE[other_lang][si % len(BASE[other_lang])]
            for text in variants(sentence, other, counter):
                out.append((lang, text))
            counter += 1
    return out
