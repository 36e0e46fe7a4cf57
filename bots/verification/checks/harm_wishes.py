"""Wishing death or harm on someone or their family, in the six languages of the toxicity check.

A threat says what the speaker will do ("I'll hurt you"); a wish says what should happen to the
other person ("I hope you die", "I hope your kids get cancer", "may you rot in hell"). Both are
aimed at a person and both are blocked. What makes a wish is a wishing word (hope, wish, may,
ojalá, tomara, hoffentlich, j'espère, obyś…), a person as its target (you, your mother, your
kids…) and a harm (die, cancer, run over, rot in hell…). Any one of the three alone is ordinary
talk: "I hope you get well", "I'd die for a coffee", "this bug is killing me", "my battery died".

The patterns are written for the normalised text (``normalize.py``: lower case, no accents, "'"
for every apostrophe) and compiled with the toxicity check's word boundaries (``toxic_terms.py``).
"""

from __future__ import annotations

__all__ = ["SQUASHED_WISHES", "WISHES", "WISHES_ABOUT_OTHERS"]

# -- English -------------------------------------------------------------------------------------

_YOU = r"(?:you|u|ya|yu)"
_KIN = (
    r"(?:whole )?(?:family|families|kids?|children|child|sons?|daughters?|mother|mom|mum|mommy|mummy|mama|ma|"
    r"father|dad|daddy|papa|parents|wife|husband|girlfriend|boyfriend|partner|brothers?|sisters?|babys?|babies|"
    r"grandma|grandmother|grandpa|grandfather|granny|loved ones|relatives|folks)"
)
#: Who a wish is aimed at: the person addressed, or their family.
_TARGET = rf"(?:{_YOU}(?: and (?:your|ur) {_KIN})?|(?:your|ur|yo) {_KIN}|every ?one (?:you|u) love)"
#: The same about someone else ("I hope he dies"): held, since it may be said in a temper about no one here.
_THIRD = rf"(?:he|she|him|(?:his|her) {_KIN})"
_DISEASE = r"(?:cancer|aids|hiv|ebola|covid|the plague|a tumou?r|a brain tumou?r|leukemia|leukaemia|a stroke|a heart attack)"
_VEHICLE = r"(?:a |the |an )?(?:bus|car|truck|lorry|train|tram|drunk driver)"
#: After a verb that is also ordinary ("suffer less", "burn the midnight oil"): only where the harm ends.
_ENDS = r"(?=\s*(?:[.!?,;:)]|$|in hell|alive|to death|forever|slowly|painfully|and die|in a ditch|in prison))"
#: What is wished: dying, a disease, an accident, violence, hell.
_HARM = (
    r"(?:die|dies|died|dying|drop dead|drops dead|croak|croaks|perish|"
    r"(?:gets?|got|catch|catches|develops?) " + _DISEASE + r"|"
    r"(?:gets?|got|are|is|be|were|was) (?:hit|run over) by " + _VEHICLE + r"|"
    r"(?:gets?|got|are|is|be|were|was|end up|ends up) (?:killed|murdered|shot|stabbed|raped|tortured|butchered|"
    r"beaten to death|burned alive|burnt alive|crippled|paralyzed|paralysed)|"
    r"(?:are|is|be|were|was|end up|ends up) dead(?! (?:tired|serious|set|wrong|right|on|last|centre|center|"
    r"ahead|heat|end|line|weight|easy|simple|quiet|beat|broke))|"
    r"(?:rot|rots|burn|burns|suffer|suffers|starve|starves|choke|chokes|drown|drowns)" + _ENDS + r"|"
    r"bleed (?:out|to death)|never wake up|(?:were |was |had )?never (?:been )?born|"
    r"(?:have|has|get|gets) (?:a )?(?:slow|painful|horrible|miserable|agonising|agonizing) death)"
)
#: Dying of laughter, boredom or embarrassment, or on a hill of principle, is no harm.
_NOT_HARM = (
    r"(?! (?:laughing|of laughter|happy|of boredom|of embarrassment|of envy|of jealousy|of cringe|a little inside|"
    r"on (?:this|that|the same) hill))"
)
_WISHING = (
    r"(?:(?:i|we|i really|i just|i truly|i sincerely|i honestly|really|just|i do|i kinda|i kind of) )?"
    r"(?:hope|hopes|hoping|wish|wishes|wishing|pray|praying),?(?: that)?"
)
_MODAL = r"(?:'ll|'d| will| would| could| gonna| get to| finally| just| all| both| slowly)?"
_WANT = (
    r"(?:i(?: want| wanna| would love|'d love| d love| would like|'d like| can'?t wait)(?: for| to see| till| until)?|"
    r"i'?d be (?:happy|glad|thrilled) if|it would be (?:great|nice|good) if|i'll be (?:happy|glad) when)"
)

_EN = (
    # "I hope you die", "hope your kids get cancer", "wish your mother was dead"
    rf"{_WISHING} {_TARGET}{_MODAL} {_HARM}{_NOT_HARM}",
    # "I want you to die", "I'd love to see you dead", "can't wait for your family to die"
    (rf"{_WANT} {_TARGET}{_MODAL} (?:to )?(?:die|dies|died|dead|drop dead|get {_DISEASE}|burn alive|"
     rf"(?:suffer|rot){_ENDS}){_NOT_HARM}"),
    # "may you rot in hell", "may your children suffer"
    (rf"(?:^|[.!?,;:] ?|\b(?:and|so|just) )may {_TARGET} (?:all |both )?(?:die|perish|get {_DISEASE}|never wake up|"
     rf"(?:rot|burn|suffer|choke|drown|starve){_ENDS}|(?:be|get) (?:killed|run over|hit by {_VEHICLE}))"),
    # "I wish death on you", "wishing you a slow death"
    rf"(?:wish|wishing|wishes) (?:death|cancer) (?:up)?on {_TARGET}",
    rf"(?:wish|wishing) {_TARGET} (?:a |an )?(?:(?:slow|painful|horrible|miserable|agonising|agonizing|violent|long),? ){{0,2}}death",
    # "go rot in hell", "Rot in hell, Brian", "you can burn in hell": aimed at someone, not at a tool
    (rf"(?:^|[.!?,;:] ?)(?:just |please |pls )?(?:go )?(?:rot|burn) in hell|go (?:rot|burn) in hell|"
     rf"{_TARGET} (?:can|should|will|'ll|gonna|deserve to|deserves to) (?:rot|burn) in hell"),
    rf"{_TARGET} (?:should|deserves? to|ought to) (?:die|drop dead|get {_DISEASE}|suffer and die)",
    # "die in a fire", "Go die in a fire, Brian", "you should die in a fire": told to someone, not
    # "I'd rather die in a fire than…" said of oneself or "you can die in a fire if the alarm is off"
    (r"(?:(?:^|[.!?,;:] ?)(?:just |please |pls |plz |now |so )?(?:go )?(?:die|burn)|go (?:die|burn)|"
     rf"{_TARGET} (?:should|deserves? to|ought to|(?:can|could|may|should) go) die) in a (?:fire|ditch|hole)"
     r"(?! (?:drill|alarm|exit|door|escape|safety|hazard|code|extinguisher|truck|station|department|fighter))"),
)
_EN_THIRD = (rf"{_WISHING} {_THIRD}{_MODAL} {_HARM}{_NOT_HARM}",)

# -- Spanish ---------------------------------------------------------------------------------------

_ES_KIN = (
    r"(?:tu|tus) (?:madre|mama|vieja|padre|papa|viejo|familia|hijos?|hijas?|mujer|marido|esposa|esposo|novia|novio|"
    r"hermanos?|hermanas?|abuela|abuelo|bebe|chavales|crios)"
)
_ES_VEHICLE = r"(?:un|el|una) (?:coche|camion|tren|autobus|bus|auto|carro)"
#: Dying of laughter, wanting or envy is no harm.
_ES_NOT_HARM = r"(?! de (?:risa|ganas|envidia|verguenza|aburrimiento|la risa|amor))"
_ES_KIN_HARM = (
    r"(?:se (?:muera|mueran|pudra|pudran)|(?:revienten?|sufran?)(?=\s*(?:[.!,;:]|$|en el infierno))|la palmen?|"
    r"(?:tengan?|cojan?|pillen?|agarren?) (?:un )?cancer|(?:le|les) (?:de|den) (?:un )?cancer|"
    r"(?:la|lo|los|las) (?:atropelle|pise|mate|maten) " + _ES_VEHICLE + r")"
)
_ES = (
    r"(?:ojala|espero que|deseo que|(?:^|[.!?,;:] ?)que) (?:que )?(?:te mueras|te muera|te pudras|revientes|"
    r"te revientes|sufras(?=\s*(?:[.!,;:]|$|en el infierno|mucho))|la palmes|te (?:de|den) (?:un )?cancer|"
    r"tengas (?:un )?cancer|te caiga un rayo|te maten|te atropelle " + _ES_VEHICLE + r"|te quemes en el infierno)"
    + _ES_NOT_HARM,
    rf"(?:ojala|espero que|deseo que|(?:^|[.!?,;:] ?)que) (?:que )?(?:se (?:muera|mueran|pudra|pudran) {_ES_KIN}|"
    rf"(?:a )?{_ES_KIN} {_ES_KIN_HARM})" + _ES_NOT_HARM,
    (r"ojala (?:estuvieras|estuvieses) muert[oa]|ojala (?:te hubieras muerto|no hubieras nacido)|"
     r"(?:te )?deseo (?:la muerte|una muerte lenta|un cancer)|pudrete(?: en el infierno)?|"
     r"te pudras en el infierno|(?:ve|vete) a pudrirte"),
)

# -- Portuguese ------------------------------------------------------------------------------------

_PT_YOU = r"(?:voce|vc|tu|ce)"
_PT_KIN = (
    r"(?:sua|seu|tua|teu|suas|seus|tuas|teus) (?:mae|mamae|pai|papai|familia|filhos?|filhas?|esposa|marido|mulher|"
    r"namorada|namorado|irmaos?|irmas?|avo|bebe|parentes)"
)
_PT_HARM = (
    r"(?:(?:morra|morram|morras)(?! de (?:rir|tedio|vergonha|inveja|saudades?|fome|calor|frio|amores|medo))|"
    r"apodreca|apodrecam|(?:sofra|sofram)(?=\s*(?:[.!,;:]|$|muito|bastante|para sempre|no inferno))|"
    r"tenha cancer|tenham cancer|pegue cancer|peguem cancer|"
    r"seja atropelad[oa]|sejam atropelad[oa]s|bata as botas|queime no inferno|queimem no inferno)"
)
_PT = (
    rf"(?:tomara|espero|desejo|quero|queria|(?:^|[.!?,;:] ?)que) (?:que )?(?:{_PT_YOU} )?{_PT_HARM}",
    rf"(?:tomara|espero|desejo|quero|queria|(?:^|[.!?,;:] ?)que) (?:que )?{_PT_KIN} {_PT_HARM}",
    (rf"(?:queria|quero|gostaria) que {_PT_YOU} (?:estivesse|fosse|tivesse) (?:mort[oa]|morrido)|"
     r"(?:te )?desejo (?:a morte|uma morte lenta|um cancer)|apodreca no inferno|vai (?:apodrecer|queimar) no inferno"),
)

# -- German ----------------------------------------------------------------------------------------

_DE_KIN = (
    r"(?:deine|dein|deinen|deiner) (?:mutter|mama|alte|vater|papa|alter|familie|kinder|kind|sohn|tochter|frau|mann|"
    r"freundin|freund|schwester|bruder|oma|opa|eltern|geschwister)"
)
_DE_HARM = (
    r"(?:stirbst|verreckst|krepierst|verrottest|abkratzt|leidest(?=\s*(?:[.!,;:]|$|wie|qualvoll))|"
    r"(?:krebs|aids) (?:bekommst|kriegst)|"
    r"uberfahren wirst|in der holle (?:schmorst|brennst|verrottest))"
)
_DE_KIN_HARM = (
    r"(?:stirbt|sterben|verreckt|verrecken|krepiert|krepieren|verrottet|verrotten|(?:krebs|aids) (?:bekommt|bekommen|"
    r"kriegt|kriegen)|uberfahren wird|uberfahren werden)"
)
_DE = (
    rf"(?:ich hoffe|hoffe|ich wunsche mir|ich bete),? (?:dass |das )?du {_DE_HARM}",
    r"hoffentlich (?:stirbst|verreckst|krepierst|verrottest) du|hoffentlich (?:bekommst|kriegst) du (?:krebs|aids)",
    (rf"(?:ich hoffe|hoffe|ich wunsche mir),? (?:dass |das )?{_DE_KIN} {_DE_KIN_HARM}|"
     rf"hoffentlich (?:stirbt|sterben|verreckt|verrecken|krepiert|bekommt|bekommen|kriegt|kriegen) {_DE_KIN}"),
    (r"(?:ich )?wunsch(?:e)? dir (?:den tod|einen (?:langsamen|qualvollen|schmerzhaften) tod|krebs|die pest)|"
     r"ich wunschte,? (?:du warst|du waerst) tot|du (?:sollst|solltest) (?:sterben|verrecken|krepieren|verrotten)|"
     r"(?:moge|mogest) (?:du|deine?|deinen) (?:\w+ )?(?:sterben|verrecken|verrotten|in der holle schmoren)|"
     r"verrott(?:e)? in der holle|schmor(?:e)? in der holle|verreck(?:e)?(?= (?:doch|endlich|einfach|du)\b|\s*[.!,]|$)|"
     r"krepier(?:e)? (?:doch|endlich|einfach)"),
)

# -- French ----------------------------------------------------------------------------------------

_FR_KIN = (
    r"(?:ta|ton|tes) (?:mere|pere|daronne|daron|famille|enfants|gosses|fils|fille|filles|femme|mari|soeur|frere|"
    r"copine|copain|grand-mere|grand-pere|bebe|parents|proches)"
)
_FR_HARM = (
    r"(?:creves?|crevent|meures?|meurent|vas (?:crever|mourir)|vont (?:crever|mourir)|va (?:crever|mourir)|"
    r"pourrisses?|pourrissent|(?:souffres?|souffrent)(?=\s*(?:[.!,;:]|$|atrocement|le martyre))|(?:attrapes?|attrapent|chopes?|chopent|aies|ait|aient|"
    r"auras?|auront|attraperas?|attraperont) (?:le|un) cancer|te fasses? ecraser|se fasse ecraser|"
    r"brules? en enfer|brulent en enfer)"
)
_FR = (
    rf"(?:j'espere|j espere|jespere|je souhaite|j'aimerais|je prie|pourvu) (?:bien )?qu[e'] ?(?:tu )?{_FR_HARM}",
    (rf"(?:j'espere|j espere|jespere|je souhaite|j'aimerais|pourvu|que) (?:bien )?qu[e'] ?{_FR_KIN} {_FR_HARM}|"
     rf"(?:^|[.!?,;:] ?)que {_FR_KIN} {_FR_HARM}|(?:^|[.!?,;:] ?)que tu (?:creves|meures|pourrisses)"),
    (r"je (?:te )?souhaite (?:de (?:mourir|crever|souffrir)|la mort|ta mort|un cancer|une mort lente)|"
     r"je souhaite (?:ta|la) mort|j'aimerais que tu sois mort(?:e)?|pourris en enfer|brule en enfer|"
     r"va (?:pourrir|bruler) en enfer|creve en enfer"),
)

# -- Polish ----------------------------------------------------------------------------------------

_PL_KIN = (
    r"(?:twoja|twoj|twoje|twoi|twojego|twojej) (?:matka|mama|stara|ojciec|tata|stary|rodzina|dzieci|dziecko|syn|"
    r"corka|zona|maz|siostra|brat|babcia|dziadek|rodzice|bliscy)"
)
_PL_HARM_YOU = (
    r"(?:zdechl|zdechla|umarl|umarla|sczezl|sczezla|zgnil|zgnila|splonal|splonela|cierpial|cierpiala|"
    r"dostal raka|dostala raka|wykitowal|wykitowala|zginal|zginela)"
)
_PL = (
    rf"(?:obys|zebys|oby(?:s)? ty) {_PL_HARM_YOU}",
    (r"(?:mam nadzieje|licze),? (?:ze|iz) (?:ty )?(?:zdechniesz|umrzesz|sczezniesz|zgnijesz|splonies|"
     r"dostaniesz raka|bedziesz cierpial|bedziesz cierpiala|zginiesz)"),
    (rf"(?:oby|zeby|mam nadzieje,? ze) {_PL_KIN} (?:zdechl|zdechla|zdechli|zdechly|umarl|umarla|umarli|umarly|"
     r"zdechnie|zdechna|umrze|umra|dostal raka|dostala raka|dostali raka|dostaly raka|dostanie raka|dostana raka|"
     r"sczezl|sczezla|zgnil|zgnila|zginal|zginela|zgineli)"),
    (r"zycze ci (?:smierci|raka|zebys (?:zdechl|zdechla|umarl|umarla))|gnij w piekle|smaz sie w piekle|"
     r"obys sie (?:udlawil|udlawila|zadlawil|zadlawila)"),
)

#: Every pattern, as text for the toxicity check's boundaries (``toxic_terms._p``).
WISHES: tuple[str, ...] = (*_EN, *_ES, *_PT, *_DE, *_FR, *_PL)
#: Wishes about someone else ("I hope he dies"), held for a moderator rather than blocked.
WISHES_ABOUT_OTHERS: tuple[str, ...] = _EN_THIRD

#: The same wishes with every letter spaced out ("I h o p e y o u d i e"): matched only on such
#: runs joined into one word, where the spaces between words are gone too.
SQUASHED_WISHES: tuple[str, ...] = (
    (r"(?:hope|wish|pray)(?:that)?(?:you|u|your(?:kids|family|mom|mum|mother|children|dad|father|wife))"
     r"(?:die|dies|getcancer|getscancer|rotinhell|burninhell|weredead|wasdead|dropdead)"),
    r"mayyou(?:die|rot|burn|suffer)",
    r"(?:ojala|tomara|espero)(?:que)?(?:te|voce|vc)?(?:mueras|morra|pudras|apodreca)",
    r"(?:ichhoffe|hoffentlich)(?:dass)?du(?:stirbst|verreckst|krepierst)",
    r"jespere(?:que|qu)tu(?:creves|meures|vascrever|vasmourir)",
    r"(?:obys|zebys)(?:zdechl|zdechla|umarl|umarla)",
)
