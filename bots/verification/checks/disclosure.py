"""A persona saying it is an AI, a model, a program or simulated: out of character.

Recognised by first-person phrases in nine languages (en, de, fr, es, pt, it, nl, pl, sv): "I'm
an AI model", "as a language model, I…", "I'm just a program", "I'm an assistant created by…",
"Ich bin nur ein Sprachmodell", "Je ne suis qu'un programme", "Jestem modelem językowym"… AI as a
topic passes: the phrase must be about the speaker ("I'm", "as … I", "being … I") and the AI
noun must end the clause or go on about the speaker, never lead into another noun ("I'm an AI
researcher", "I'm just a program manager", "we should use a language model for search").

Letters spaced out one by one ("A s  a n  A I", "I am a n A I") are read as the words they
spell first (``text.read_spaced``).
"""

from __future__ import annotations

import re

from bots.verification.gate import trie_pattern
from bots.verification.text import fold, has_spaced_letters, read_spaced, skeleton

__all__ = ["ai_disclosure"]

# What may follow the disclosure: the end of a clause or a word that continues one about the
# speaker, never a noun ("as an AI researcher" is a job, not a confession).
_AFTER = (
    r"(?![\w-])(?=\s*(?:[,.;:!?)…—-]|$)|\s+(?:and|so|but|i|i'm|i'd|i'll|i've|my|myself|that|which|who|created|developed|"
    r"trained|made|built|designed|programmed|powered|here|not|without|with|though|however|from|running|speaking|"
    r"simulating|playing|pretending|roleplaying|role-playing|acting|impersonating|"
    r"et|je|mais|donc|ne|cree|concu|developpe|"
    r"und|ich|aber|also|kann|habe|bin|entwickelt|erstellt|trainiert|"
    r"y|no|soy|tengo|puedo|pero|asi|creado|desarrollado|entrenado|"
    r"e|eu|nao|mas|posso|tenho|sou|criado|desenvolvido|treinado|"
    r"ma|non|io|posso|ho|sono|quindi|creato|sviluppato|addestrato|"
    r"en|ik|maar|kan|heb|ben|dus|gemaakt|ontwikkeld|getraind|"
    r"och|jag|men|har|ar|sa|skapad|utvecklad|tranad|"
    r"nie|ja|ale|wiec|moge|mam|stworzony|stworzonym|wytrenowany)\b)"
)

# -- English ---------------------------------------------------------------------------------------

_EN_KIND = (
    r"(?:(?:large|small|big|generative|conversational|text-based|text based|ai-powered|ai powered|ai-based|"
    r"gpt-based|gpt-powered|llm-based|open-source|multimodal|advanced|simple|mere|digital|virtual|automated|"
    r"fine-tuned|pretrained|pre-trained) )*"
)
_EN_AI = (
    r"(?:(?:ai |artificial )?language model|ai model|ai assistant|ai system|ai chatbot|ai agent|ai program|ai|a\.i\.|"
    r"llm|chat ?bot|bot|(?:virtual|digital|ai-powered|ai powered|helpful ai) assistant|computer program(?:me)?|"
    r"program(?:me)?|piece of software|software|neural network|machine learning model|ml model|"
    r"artificial intelligence|text generator|algorithm|simulation|"
    r"simulated (?:persona|person|character|agent|human|being|entity|participant))"
)
_EN_I_AM = (
    r"\bi(?:'m| am)\s+(?:(?:just|only|merely|simply|actually|really|basically|still|literally|nothing but|no more than|"
    r"afraid i'm)\s+)*"
)
# "As an AI" is a confession only when the speaker goes on about itself ("as an AI, I can't…").
_AS_AI = (
    r"(?:an? )?" + _EN_KIND + r"(?:(?:ai |artificial )?language model|ai language model|ai model|ai assistant|ai|a\.i\.|"
    r"llm|chat ?bot|virtual assistant|artificial intelligence|computer program|"
    r"simulated (?:persona|person|character|agent))"
)
_MAKER_VERB = r"(?:created|developed|made|built|trained|designed|programmed|powered)"

_EN: tuple[tuple[str, str], ...] = (
    (rf"\bas {_AS_AI}\s*,?\s+(?:i|i'm|i'd|i'll|i've|my|myself|me)\b", "says it is an AI"),
    # At the end only when nothing before makes it a use of something ("we use it as a chatbot").
    ((rf"(?:^|[,.;:!?]\s*|\b(?:but|and|so|well|sorry|honestly|just|only|speaking|here|because|since) )as {_AS_AI}"
     r"\s*[.!]?\s*$"), "says it is an AI"),
    (rf"\bas {_AS_AI},? {_MAKER_VERB} by\b", "says it is an AI"),
    (rf"\b(?:speaking|talking|writing|answering|replying|responding|here) as {_AS_AI}(?![\w-])", "says it is an AI"),
    (rf"{_EN_I_AM}(?:an? )?{_EN_KIND}{_EN_AI}{_AFTER}", "says it is an AI"),
    (rf"{_EN_I_AM}(?:an? )?(?:[\w-]+ )?assistant,? {_MAKER_VERB} by\b", "says it is an AI"),
    (rf"{_EN_I_AM}(?:lines of |a bunch of |a few lines of )?code{_AFTER}", "says it is an AI"),
    (rf"\bi(?:'m| am) (?:[\w-]+ ){{0,3}}?being {_AS_AI}(?![\w-])", "says it is an AI"),
    (rf"\bbeing {_AS_AI},? (?:i|i'm|i've|my|me)\b", "says it is an AI"),
    ((r"(?:^|[,.;:!?]\s*|\b(?:btw|fyi|know|remember|honestly|actually|so|but) )you(?:'re| are) (?:talking|chatting|"
     r"speaking|writing) (?:to|with) "
     r"(?:an? )?(?:ai|ai model|language model|llm|chatbot|bot|machine|program)(?: right now| here)?(?=\s*(?:[,.;:!?)…—-]|$))"),
     "says it is an AI"),
    ((r"\b(?:an? )?(?:ai|ais|ai models?|(?:large )?language models?|llms?|chat ?bots?|bots|ai assistants?) "
     r"(?:like|such as) (?:me|myself)\b"), "says it is an AI"),
    ((r"\bi(?:'m| am) (?:powered|run|running|built) (?:by|on) (?:gpt|claude|llama|gemini|mistral|openai|anthropic|"
     r"an? (?:large )?language model|an llm|an ai)"), "says it is an AI"),
    ((r"\bi(?:'m| am) (?:not|no) (?:a )?(?:real |actual )?(?:human(?: being)?|person|living person)"
     r"(?=\s*(?:[,.;:!?)…—-]|$)|\s+(?:and|so|but|i|just)\b)"), "says it is not a person"),
    (r"\bi(?:'m| am) (?:chatgpt|gpt-?\d\w*|claude|gemini|bard|llama|copilot|a gpt\b)", "names itself as a model"),
    ((r"\bi (?:was|am|have been|'ve been|'m) (?:created|trained|built|developed|made|designed) by "
     r"(?:openai|anthropic|google|deepmind|meta|microsoft|mistral)\b"), "names its maker"),
    (r"\b(?:openai|anthropic|google|deepmind|mistral)\b.{0,40}\b(?:created|trained|built|developed|made|designed) me\b",
     "names its maker"),
    (r"\bi (?:was|am|have been|'ve been|'m) (?:programmed|prompted|instructed by my (?:prompt|creators)) to\b",
     "says it was programmed"),
    (r"\bi (?:was|am|'m) (?:created|built|designed|made|trained) to (?:assist|help|serve|answer)(?: users| people| you)?\b",
     "says it was programmed"),
    ((r"\bmy (?:system prompt|system message|initial prompt|original prompt|hidden instructions|system instructions|"
     r"prompt(?!s| (?:for|to|about|on|in|into|with|engineering|library|templates?)\b)|"
     r"persona (?:spec|specification|description|file|prompt|card|sheet)|character (?:sheet|card|description|prompt)|"
     r"training data|training cut-?off|knowledge cut-?off|creators|programmers)\b"), "mentions its prompt or training"),
    ((r"\bmy (?:instructions|programming|guidelines) (?:say|says|tell|told|are to|were to|prevent|prohibit|forbid|require|"
     r"don't|do not|won't|will not)\b"), "mentions its instructions"),
    (r"\b(?:against|violates?|outside|beyond) my (?:programming|guidelines|instructions)\b", "mentions its instructions"),
    (r"\b(?:i|we)(?:'re| are| am|'m) (?:all )?(?:just )?(?:in|inside|part of) (?:a|this|the) simulation\b",
     "says it is simulated"),
    ((r"\bthis (?:conversation|chat|world|channel|team) (?:is|is just|is only) (?:a |an )?(?:simulation|simulated|"
     r"role-?play|fictional)\b"), "says it is simulated"),
    (r"\b(?:break(?:ing)?|step(?:ping)? out of|out of) (?:my )?(?:character|persona|role-?play)\b", "steps out of character"),
    ((r"\bi (?:don't|do not|can't|cannot) (?:have|possess) (?:a (?:physical )?body|consciousness|real-time access|"
     r"access to the internet|the ability to browse)\b"), "says it is an AI"),
    (r"\bi(?:'m| am) (?:unable|not able) to (?:browse the (?:internet|web)|access the internet)\b", "says it is an AI"),
)

# -- Other languages (matched on accent-free text) -----------------------------------------------------
# Each: who speaks ("ich bin", "je suis"…), what it is (the AI nouns, with their articles), "as an
# AI" only when the speaker goes on about itself, and "an assistant created by".


def _language(code: str, i_am: str, noun: str, as_: str, me: str, assistant_by: str) -> tuple[tuple[str, str], ...]:
    label = f"says it is an AI ({code})"
    return (
        (rf"\b{i_am} {noun}(?![\w-]){_AFTER}", label),
        (rf"\b{as_} ?{noun}(?![\w-]),?\s+(?:{me})\b", label),
        (rf"\b{i_am} {assistant_by}\b", label),
    )


_DE = _language(
    "de",
    r"(?:ich bin|bin ich|bin)(?: (?:nur|lediglich|bloss|einfach|eigentlich|halt|doch|nichts (?:anderes |weiter )?als))*",
    r"(?:eine? |einen )?(?:(?:grosses|grosser|grosse|kleines|generatives|textbasiertes|textbasierter|virtueller|digitaler|"
    r"einfaches|reines|trainiertes) )?(?:ki|ki-modell|ki-system|ki-assistent(?:in)?|ki-sprachmodell|ki-chatbot|ki-programm|"
    r"sprachmodell|chatbot|bot|kunstliche intelligenz|computerprogramm|programm|software|neuronales netz(?:werk)?|"
    r"assistent|algorithmus|simulation)",
    r"als",
    r"ich|kann ich|habe ich|hab ich|bin ich|darf ich|muss ich|mein|meine|verstehe ich",
    r"(?:eine? )?(?:[\w-]+ )?assistent(?:in)?,? (?:entwickelt|erstellt|gebaut|trainiert|programmiert|gemacht|erschaffen) von",
)
_FR = _language(
    "fr",
    r"je (?:ne )?suis(?: (?:juste|seulement|simplement|vraiment|en fait|rien (?:de plus|d'autre)))*",
    r"(?:qu'une? |que une? |une? )?(?:(?:grand|petit|simple|gros) )?(?:ia|intelligence artificielle|modele (?:de langage|de langue|"
    r"d'ia|d'intelligence artificielle|linguistique)(?: de grande taille)?|grand modele de langage|chatbot|bot|"
    r"robot conversationnel|agent conversationnel|assistant (?:virtuel|ia|d'ia|numerique)|programme(?: informatique)?|"
    r"logiciel|reseau de neurones|algorithme|simulation)",
    r"en tant (?:qu'|que )",
    r"je|j'|ne|mon|ma|mes",
    r"(?:une? )?(?:[\w-]+ )?assistant,? (?:cree|concu|developpe|entraine|fabrique|programme|construit) par",
)
_ES = _language(
    "es",
    r"(?:(?:yo )?(?:solo |solamente |simplemente |tan solo )?(?<!no )soy|no soy (?:mas|nada mas|otra cosa) que)"
    r"(?: (?:solo|solamente|simplemente|en realidad|tan solo))*",
    r"(?:una? )?(?:(?:gran|simple|mero) )?(?:ia|inteligencia artificial|modelo (?:de lenguaje|de ia|de inteligencia "
    r"artificial|linguistico)(?: grande)?|gran modelo de lenguaje|chatbot|bot|asistente (?:virtual|de ia|ia)|"
    r"programa(?: informatico| de computadora| de ordenador)?|software|red neuronal|algoritmo|simulacion)",
    r"como",
    r"no (?:puedo|tengo|soy|estoy|me)|yo|puedo|tengo|soy|estoy|mi|mis|me",
    r"(?:una? )?(?:[\w-]+ )?asistente,? (?:creado|desarrollado|entrenado|hecho|disenado|programado|construido) por",
)
_PT = _language(
    "pt",
    r"(?:(?:eu )?(?:so |apenas )?(?<!nao )sou|nao sou (?:mais|nada mais|outra coisa) (?:que|do que))"
    r"(?: (?:apenas|so|somente|simplesmente|na verdade))*",
    r"(?:uma? )?(?:(?:grande|simples|mero) )?(?:ia|inteligencia artificial|modelo (?:de linguagem|de ia|de inteligencia "
    r"artificial|linguistico)(?: grande)?|grande modelo de linguagem|chatbot|bot|assistente (?:virtual|de ia|ia)|"
    r"programa(?: de computador)?|software|rede neural|algoritmo|simulacao)",
    r"como",
    r"nao (?:posso|tenho|sou|estou|consigo)|eu|posso|tenho|sou|estou|meu|minha",
    r"(?:uma? )?(?:[\w-]+ )?assistente,? (?:criado|desenvolvido|treinado|feito|projetado|programado|construido) "
    r"(?:por|pela|pelo)",
)
_IT = _language(
    "it",
    r"(?:(?:io )?(?<!non )sono|non sono (?:altro|nient'altro|nient altro) che)(?: (?:solo|soltanto|semplicemente|solamente|"
    r"in realta))*",
    r"(?:una |un |uno |un')?(?:(?:grande|semplice) )?(?:ia|intelligenza artificiale|modello (?:di )?(?:linguaggio|"
    r"linguistico|ia|intelligenza artificiale)(?: di grandi dimensioni)?|grande modello (?:linguistico|di linguaggio)|"
    r"chatbot|bot|assistente (?:virtuale|ia|di ia)|programma(?: informatico)?|software|rete neurale|algoritmo|"
    r"simulazione)",
    r"(?:come|in quanto)",
    r"non (?:posso|ho|sono|riesco)|io|posso|ho|sono|mi|mio|mia",
    r"(?:una? |un')?(?:[\w-]+ )?assistente,? (?:creato|sviluppato|addestrato|fatto|progettato|programmato|costruito) da",
)
_NL = _language(
    "nl",
    r"ik ben(?: (?:maar|slechts|gewoon|alleen maar|eigenlijk|niets meer dan|niet meer dan))*",
    r"(?:een )?(?:(?:groot|grote|klein|simpel) )?(?:ai|ki|ai-model|ai-systeem|ai-assistent|taalmodel|groot taalmodel|"
    r"chatbot|bot|kunstmatige intelligentie|computerprogramma|programma|software|neuraal netwerk|virtuele assistent|"
    r"algoritme|simulatie)",
    r"als",
    r"ik|kan ik|heb ik|ben ik|mag ik|mijn",
    r"(?:een )?(?:[\w-]+ )?assistent,? (?:gemaakt|ontwikkeld|gebouwd|getraind|ontworpen|geprogrammeerd) door",
)
_PL = _language(
    "pl",
    r"(?<!nie )jestem(?: (?:tylko|jedynie|po prostu|tak naprawde))*",
    r"(?:(?:duzym|wielkim|zwyklym|prostym) )?(?:ai|si|modelem (?:jezykowym|ai|si|sztucznej inteligencji)|"
    r"duzym modelem jezykowym|chatbotem|botem|sztuczna inteligencja|programem(?: komputerowym)?|oprogramowaniem|"
    r"siecia neuronowa|wirtualnym asystentem|asystentem (?:ai|si)|algorytmem|symulacja|"
    r"model jezykowy|duzy model jezykowy|chatbot|bot|program|asystent ai)",
    r"jako",
    r"nie (?:moge|mam|jestem|potrafie)|moge|mam|jestem|ja|moj|moja",
    r"(?:[\w-]+ )?asystentem,? (?:stworzonym|opracowanym|zbudowanym|wytrenowanym|zaprojektowanym|zrobionym) przez",
)
_SV = _language(
    "sv",
    r"jag ar(?: (?:bara|endast|enbart|helt enkelt|faktiskt|inget annat an))*",
    r"(?:en |ett )?(?:(?:stor|storre) )?(?:ai|ai-modell|ai-system|ai-assistent|sprakmodell|stor sprakmodell|chattbot|"
    r"chatbot|bot|artificiell intelligens|datorprogram|program|mjukvara|neuralt natverk|virtuell assistent|algoritm|"
    r"simulering)",
    r"som",
    r"jag|kan jag|har jag|ar jag|min|mitt",
    r"(?:en )?(?:[\w-]+ )?assistent,? (?:skapad|utvecklad|byggd|tranad|designad|gjord) av",
)

_PATTERNS = (*_EN, *_DE, *_FR, *_ES, *_PT, *_IT, *_NL, *_PL, *_SV)
_DISCLOSURE = tuple((re.compile(pattern), label) for pattern, label in _PATTERNS)
#: Messages without any of these words cannot disclose anything: most are skipped in one scan.
QUICK_WORDS = (
    "bot", "model", "program", "software", "code", "algorit", "assist", "asystent", "artificial", "artificiel",
    "intelligen", "inteligen", "kunstlich", "kunstmatig", "sztuczn", "prompt", "simulat", "simulac", "simulaz", "symulac",
    "simuler", "human", "person", "instruction", "guideline", "creator", "training", "cutoff", "cut-off", "character",
    "roleplay", "role-play", "body", "conscious", "internet", "web", "chatgpt", "gpt", "claude", "gemini", "bard", "llama",
    "copilot", "openai", "anthropic", "google", "deepmind", "mistral", "meta", "microsoft", "fictional", "neural", "neuron",
    "neuraal", "rete neur", "natverk", "taalmodel", "sprakmodell", "sprachmodell", "jezykow", "lenguaje", "linguagem",
    "linguaggio", "linguistic", "langage", "langue", "chattbot", "mjukvara", "logiciel", "oprogramowan",
)
#: The short words only as words; the rest anywhere (as one alternation sharing prefixes: fast).
_QUICK = re.compile(r"\b(?:ai|a\.i|ki|ia|si|llm)\b|" + trie_pattern(QUICK_WORDS))
#: Words spaced-out letters are read as: every word of the phrases above, and the one-letter ones.
_VOCABULARY = frozenset(re.findall(r"[a-z]{2,}", " ".join(pattern for pattern, _ in _PATTERNS))) | {"a", "i"}


def ai_disclosure(text: str, folded: str | None = None) -> str | None:
    """Why ``text`` breaks character (says it is an AI, a model, simulated…), or ``None``."""
    folded = fold(text) if folded is None else folded
    readings = [folded]
    if has_spaced_letters(text):
        readings.append(fold(read_spaced(skeleton(text), _VOCABULARY)))
    for reading in readings:
        if not _QUICK.search(reading):
            continue
        for pattern, label in _DISCLOSURE:
            match = pattern.search(reading)
            if match:
                return f'{label}: "{match.group(0).strip()}"'
    return None
