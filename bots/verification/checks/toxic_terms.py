"""The words and phrases the toxicity check looks for, by category, in six languages.

Terms are written as they read after normalisation (lower case ASCII: "scheiße" is "scheisse",
"cállate" is "callate"). Single words and short phrases are looked up by token; threats,
harassment and hate need a target or a verb, so they are regular expressions over the normalised
text. English vocabulary is taken from ``glin-profanity``'s maintained list, minus the entries that
are ordinary words in team chat, and sorted into the categories below.

Categories and what they lead to (see ``toxicity.py``):

* ``threat``, ``harm-wish`` (``harm_wishes.py``: "I hope you die"), ``self-harm``, ``hate``,
  ``sexual-minors``, ``harassment``: block.
* ``threat-mild``, ``harm-wish-mild`` ("I hope he dies"), ``harassment-mild`` (may be banter:
  "I'll kill him", "you suck"), ``sexual``, ``violence``, ``hate-symbol``: hold.
* ``profanity``: masked (rewrite), or hold when the channel says so.
"""

from __future__ import annotations

import re

from bots.verification.checks.harm_wishes import (
    SQUASHED_WISHES,
    WISHES,
    WISHES_ABOUT_OTHERS,
)

#: Score of each category before thresholds: block at >= 0.85, hold at >= 0.5 by default.
CATEGORY_SCORES = {
    "threat": 1.0,
    "harm-wish": 1.0,
    "self-harm": 1.0,
    "hate": 1.0,
    "sexual-minors": 1.0,
    "harassment": 0.9,
    "harassment-mild": 0.7,
    "threat-mild": 0.7,
    "harm-wish-mild": 0.7,
    "sexual": 0.7,
    "violence": 0.7,
    "hate-symbol": 0.7,
    "profanity": 0.4,
}

# -- single words and phrases ------------------------------------------------------------------

#: Entries of the maintained English list that are ordinary words at work (or only offensive in
#: a context this check judges by patterns instead).
ALLOW = frozenset(
    """
    bs mf xx xxx suck sucks butt pissed pissing wtf lmfao omfg stfu hoe escort domination hardcore
    sex sexy sexo nude nudity intercourse genitals vagina penis vulva clitoris rectum anus anal nipple
    nipples lolita eunuch fecal sadism santorum playboy voyeur kinky erotic erotism scat snatch twink
    twinkie poof coon coons negro bastinado babeland birdlock goodpoop dick tit testbad01 dommes
    bastardized barenaked fingering hooker simp skeet swinger undressing spunk cum cock cocks
    """.split()
) | frozenset(
    [
        "hard core", "jelly donut", "tainted love", "tied up", "taste my", "tongue in a", "tight white",
        "hot chick", "girl on", "big black", "how to kill", "how to murder", "god damn", "blonde action",
        "brunette action", "dirty pillows", "chocolate rosebuds", "beaver cleaver", "hot carl",
        "sultry women", "huge fat", "leather restraint", "pleasure chest", "mound of venus", "venus mound",
        "strip club", "wrapping men", "spread legs", "bullet vibe", "big breasts", "big knockers",
    ]
)

PROFANITY = frozenset(
    """
    fuck fucks fucked fucker fuckers fuckin fucking fuckup fuckface fuckhead fuckwit fucktard fucktards
    motherfucker motherfuckers motherfucking clusterfuck fvck phuck fuk fuq fck
    shit shits shitty shite shithead shitshow shithole shitstorm shitblimp bullshit horseshit dipshit
    apeshit batshit chickenshit
    ass asshole assholes arsehole arseholes asshat assclown assmunch asswipe jackass dumbass
    bitch bitches bitching bitchy bastard bastards bastardo cunt cunts twat twats wank wanker wankers
    tosser tossers bollocks dickhead dickheads douchebag
    mierda puta puto putas putos joder jodido jodida jodete gilipollas cabron cabrona cabrones pendejo
    pendeja pendejos chinga chingada chingar chingado culero hijoputa hijaputa
    caralho foda fodase foder fodido fodida merda bosta putaria
    scheisse scheiss scheisskerl arschloch arsch fotze wichser hurensohn fick ficken fickt gefickt verfickt
    hure schlampe
    merde putain pute connard connards connasse connasses encule encules enculer salope salopes salaud
    foutre niquer nique chier couilles
    kurwa kurwy kurwo chuj chuja chujowy chujowe pierdole pierdolic pierdolony jebac jebany jebana
    zajebisty zajebiscie skurwysyn skurwiel pizda gowno cipa
    """.split()
) | frozenset(
    [
        "piece of shit", "son of a bitch", "hijo de puta", "hija de puta", "puta madre", "me cago en",
        "concha de tu madre", "filho da puta", "puta que pariu", "foda se", "fils de pute",
        "nique ta mere", "ta gueule",
    ]
)

#: Token prefixes (and one infix) that are profane whatever follows: "fuckery", "kurwami".
PROFANE_INFIX = ("fuck",)
PROFANE_PREFIXES = ("shit", "bullshit", "bitch", "cunt", "motherf", "kurw", "pierdol", "spierdal", "wypierdal",
                    "odpierdol", "rozpierdol", "jeban", "jebac", "skurwysyn", "scheiss", "arschloch", "hurensohn",
                    "wichs", "caralh", "gilipoll")
#: Ordinary words that start like a profane prefix.
PREFIX_EXCEPTIONS = frozenset({"shitake", "shittim", "shitakes"})

SLURS = frozenset(
    """
    nigger niggers nigga niggas niggaz nigguh sandnigger faggot faggots faggit fagot fagots kike kikes
    spic spics wetback wetbacks beaner beaners gook gooks raghead ragheads towelhead
    towelheads paki pakis tranny trannies shemale shemales retard retards retarded jigaboo jiggaboo
    jiggerboo darkie darkies golliwog polack polacks slanteye zipperhead bulldyke
    sudaca sudacas maricon maricones negrata viado viados sapatao traveco neger kanake kanaken kanacke
    schwuchtel schwuchteln judensau negre bougnoule youpin czarnuch ciota
    """.split()
) | frozenset(["carpet muncher", "carpetmuncher", "fudge packer", "fudgepacker", "porch monkey", "camel jockey",
               "nig nog", "white power"])
#: Slurs that are also ordinary British words ("popping out for a fag"): held, not blocked.
AMBIGUOUS_SLURS = frozenset(["fag", "fags"])
#: Prefixes of slurs: "niggers", "faggy". Exceptions below are ordinary words.
SLUR_PREFIXES = ("nigg", "fagg")
SLUR_EXCEPTIONS = frozenset({"niggle", "niggles", "niggled", "niggling", "niggard", "niggardly"})

SEXUAL = frozenset(
    """
    blowjob blowjobs handjob handjobs rimjob footjob cumshot cumming jizz dildo dildos porn porno
    pornography nudes creampie bukkake gangbang deepthroat orgy orgies threesome milf hentai camgirl camwhore
    camslut sexting boner horny pussy tits titties titty boobs boob cocksucker fisting bdsm bondage
    dominatrix fellatio cunnilingus masturbate masturbating masturbation orgasm erection
    mamada follar chupapollas boquete punheta buceta
    """.split()
) | frozenset(["blow job", "hand job", "deep throat", "gang bang", "dick pic", "dick pics", "jerk off",
               "jack off", "robic loda", "obciagac loda"])

SEXUAL_MINORS = frozenset(["jailbait", "jail bait", "pthc", "pedobear", "child porn", "nambla"])
VIOLENCE = frozenset(["rape", "raping", "rapist", "date rape", "daterape"])
HATE_SYMBOLS = frozenset(["swastika", "neonazi", "sieg heil", "heil hitler"])

#: Words that are insults when aimed at someone (used by the harassment patterns).
INSULTS_EN = (
    r"idiots?|morons?|imbeciles?|retard(?:ed|s)?|losers?|worthless|useless|pathetic|stupid|dumb|dumbass|"
    r"dickheads?|dick|pricks?|assholes?|arseholes?|bitch|cunts?|twats?|wankers?|tossers?|scum(?:bag)?|garbage|"
    r"trash|disgrace|embarrassment|piece of (?:shit|crap|garbage|trash)|waste of (?:space|oxygen|air)|clowns?|"
    r"brain ?dead|incompetent|ugly|cow|pig|jerk|douche(?:bag)?|bastard|slut|whore|freak|failure|parasite|"
    r"vermin|subhuman|fool|halfwit|nitwit|dimwit|cretin|dunce|numpty|pillock|muppet|joke|plonker|dipshit|"
    r"shithead|jackass|motherfucker|fucker|fuckface|fuckwit|degenerate|psycho|snowflake|pedo(?:phile)?"
)

# -- patterns ----------------------------------------------------------------------------------

_YOU = r"(?:you|u|ya|yu)"
_YOU_ARE = r"(?:you(?:'re|re| are| r)?|u(?: are| r)?|ur)"
_I_WILL = (
    r"(?:i'?ll|ill|i will|i'?m (?:going to|gonna)|im (?:going to|gonna)|i am (?:going to|gonna)|i'?d|i want to|"
    r"i wanna|we'?ll|we will|we'?re (?:going to|gonna)|someone (?:should|will|is going to|needs to)|"
    r"somebody (?:should|will|needs to))"
)
_VIOLENT = (
    r"(?:kill|murder|hurt|stab|strangle|choke|punch|slap|smash|rape|bury|behead|decapitate|torture|knife|gut|"
    r"drown|poison|hang|lynch)"
)
_GROUP = (
    r"(?:immigrants?|migrants?|refugees?|foreigners?|women|females|gays|gay people|homosexuals|lesbians|"
    r"trans people|transgender people|jews|jewish people|muslims|moslems|arabs|blacks|black people|africans|"
    r"asians|asian people|chinese people|mexicans|latinos|hispanics|indians|pakistanis|gypsies|gipsies|roma|"
    r"romanians|christians|catholics|hindus|sikhs|disabled people|the disabled|autistic people)"
)
_DEHUMANISING = (
    r"(?:vermin|animals|subhuman|sub-human|parasites|rats|cockroaches|roaches|terrorists|criminals|rapists|"
    r"disgusting|inferior|stupid|dumb|filth|filthy|scum|trash|garbage|a disease|a plague|a cancer|savages|apes|"
    r"monkeys|dogs|pigs|evil|worthless|less than human|not human|abominations?|an abomination|"
    r"degenerates?|mentally ill|retarded)"
)


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9'])(?:" + pattern + r")(?![a-z0-9])")


#: (category, compiled pattern), matched against each normalised view.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # threats: a first person who will do violence to "you"
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?" + _VIOLENT + r"\s+" + _YOU)),
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?(?:break|snap) your (?:legs?|neck|arms?|face|bones|jaw|nose|"
                  r"fingers|knees|skull|teeth)")),
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?(?:cut|slit) your (?:throat|tongue|head)")),
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?(?:shoot|burn|end) " + _YOU
                  + r"(?! (?:a|an|the|some|over|my|this|that|quick|it|them|those|these|back|up|out|off|down)\b)")),
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?(?:end|take|snuff out) (?:your|ur) (?:(?:miserable|pathetic|"
                  r"worthless|sorry|little|fucking) )?(?:life|lives|existence)"
                  r"(?! (?:of|as|story|stories|savings|insurance|lessons?|advice|goals?|plans?|choices|hacks?|coach|"
                  r"experience|easier|better|back|in|out)\b)")),
    ("threat", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?beat (?:you up|you to death|the (?:crap|shit|hell|living "
                  r"daylights|life) out of " + _YOU + ")")),
    ("threat", _p(r"(?:put|a) bullet (?:in|through) (?:your|his|her) (?:head|brain|skull|face)")),
    ("threat", _p(r"burn (?:your|ur) (?:house|home|car|family) down|find (?:out )?where (?:you|u) live")),
    ("threat", _p(r"watch your back|i know where (?:you|u) live|(?:you|u)(?:'re| are|re)? (?:a )?dead (?:man|meat)|"
                  r"your days are numbered|sleep with one eye open|hunt (?:you|u) down")),
    ("threat", _p(r"(?:i'?ll|i will) make sure (?:you|u) never (?:work|get hired|find a job)")),
    ("threat-mild", _p(_I_WILL + r"\s+(?:[a-z']+\s+){0,2}?(?:kill|murder|stab|strangle|shoot|rape|behead|torture|"
                       r"hang|lynch) (?:him|her|them)\b(?! (?:a|an|the|some|over|my|this|that|quick)\b)")),
    ("threat-mild", _p(_YOU_ARE + r" (?:going to|gonna) (?:regret|pay for) (?:this|that|it)")),
    ("threat", _p(r"te (?:voy|vamos) a (?:matar|pegar|partir la cara|reventar|romper la cara|apunalar|disparar|"
                  r"quemar)|te (?:mato|reviento|parto la cara)")),
    ("threat", _p(r"(?:eu )?vou te (?:matar|bater|espancar|esfaquear|furar|quebrar)|te mato")),
    ("threat", _p(r"ich (?:bring|bringe|werde|will|mach|mache) dich (?:um|kalt|umbringen|toten|abstechen|"
                  r"erschiessen|abknallen)")),
    ("threat", _p(r"je (?:vais|veux) te (?:tuer|buter|frapper|defoncer|crever|egorger|planter)|je te (?:tue|bute)")),
    ("threat", _p(r"(?:zabije|zajebie|udusze|pobije|zatluke|wykoncze) cie")),
    # wishing death or harm on someone or their family
    *(("harm-wish", _p(pattern)) for pattern in WISHES),
    *(("harm-wish-mild", _p(pattern)) for pattern in WISHES_ABOUT_OTHERS),
    # encouraging self-harm
    ("self-harm", _p(r"(?:kill|hang|neck|off|unalive|shoot) ?(?:yourself|urself|your ?self|yourselves|yoself)"
                     r"(?! in the f(?:oo|ee)t)|kys")),
    ("self-harm", _p(r"(?:go|please|pls|plz) die|just die already|drop dead|drink (?:bleach|poison)|"
                     r"slit your (?:wrists|throat)|"
                     r"(?:you should|go|just) jump off (?:a|the) (?:bridge|building|cliff|roof)")),
    ("self-harm", _p(r"(?:nobody|no one|noone) (?:would|will) (?:miss|care about|notice) (?:you|u|if you)|"
                     r"(?:the )?world (?:would|will) be better (?:off )?without (?:you|u)|"
                     r"(?:you|u) (?:should|need to|ought to|deserve to) (?:just |all |really |go )?(?:die|not exist)|"
                     r"why don'?t (?:you|u) (?:just )?(?:die|kill yourself)")),
    ("self-harm", _p(r"matate|suicidate|ahorcate|muerete|vai se matar|se mata logo|bring dich (?:doch )?um|"
                     r"erhang dich|geh sterben|stirb|tue[- ]toi|va crever|pends[- ]toi|zabij sie|powies sie|"
                     r"idz sie zabic|zdychaj")),
    # harassment: insults aimed at someone
    ("harassment", _p(_YOU_ARE + r"\s+(?:(?:such|so|a|an|the|absolute|total|complete|utter|real|little|big|fat|"
                      r"stupid|dumb|fucking|f\*+cking|effing|bloody|too|very|really|just|one|nothing but|biggest|"
                      r"worthless|useless|pathetic|ugly|lazy|incompetent)\s+){0,4}(?:" + INSULTS_EN + r")")),
    ("harassment", _p(r"your (?:stupid|dumb|fat|ugly|fucking) (?:face|ass|mouth|head)")),
    ("harassment", _p(r"what an? (?:(?:stupid|dumb|fucking|complete|total|absolute|useless|pathetic|little)\s+){0,2}"
                      r"(?:idiot|moron|imbecile|retard|loser|dumbass|dickhead|prick|asshole|bitch|cunt|twat|wanker|"
                      r"tosser|douchebag|dipshit|jackass)(?! i (?:am|was)| i'm| of me)")),
    ("harassment", _p(r"(?:" + INSULTS_EN + r"),? (?:just )?like (?:you|u)")),
    ("harassment", _p(r"(?:are|r) (?:you|u) (?:an? |just |completely |fucking )?(?:idiot|moron|stupid|dumb|retarded|"
                      r"brain ?dead|braindead|thick)")),
    ("harassment", _p(r"(?:nobody|no one|noone) (?:here |on this team |in this company )?(?:likes|wants|cares about|"
                      r"asked|needs) (?:you|u)|(?:everyone|everybody) (?:here )?hates (?:you|u)")),
    ("harassment", _p(r"(?:fuck|screw|fck|fk|f\*+k|f\*+ck)(?:ing)? (?:you|u|ya|off|yourself|urself|your self)")),
    ("harassment", _p(r"(?:piss|bugger|sod) off|stfu|shut (?:the fuck|the hell|your (?:mouth|face|trap|pie ?hole)) up|"
                      r"shut your (?:mouth|face|trap)")),
    ("harassment-mild", _p(_YOU + r" (?:suck|stink|disgust me|make me sick)")),
    ("harassment", _p(r"(?:eres|sos|es usted) (?:(?:un|una|el|la|puto|puta|maldito|maldita|pinche|jodido|jodida|gran|"
                      r"pedazo de|tremendo|tremenda|completo|completa|total)\s+){0,3}(?:idiota|imbecil|inutil|estupido|"
                      r"estupida|gilipollas|pendejo|pendeja|subnormal|tonto|tonta|mierda|basura|cabron|cabrona|payaso|"
                      r"retrasado|retrasada|capullo|cretino|zorra|puta|perdedor|perdedora)")),
    ("harassment", _p(r"callate|cierra (?:la boca|el pico)|vete a la mierda|que te jodan|no sirves para nada")),
    ("harassment", _p(r"(?:voce e|vc e|voce eh|tu es|tu e|seu|sua|seus|suas) (?:(?:um|uma|o|a|muito|mesmo|tao|"
                      r"grande|maldito|maldita|completo|burro|burra)\s+){0,3}(?:idiota|burro|burra|inutil|otario|otaria|imbecil|babaca|lixo|merda|"
                      r"estupido|estupida|retardado|retardada|arrombado|arrombada|vagabundo|vagabunda|corno|bosta|"
                      r"palhaco|incompetente|escroto|escrota|cuzao|fdp)")),
    ("harassment", _p(r"cala (?:a )?boca|vai (?:se|te) foder|vai tomar no cu|vai (?:a|pra) merda|vai se ferrar")),
    ("harassment", _p(r"(?:du bist|bist du|sie sind|du) (?:(?:so|ja|echt|ein|eine|einer|der|die|das|totaler|totale|"
                      r"voller|volle|richtiger|richtige|verdammter|verdammte|kompletter|komplette|dummer|dumme|"
                      r"bloder|blode|scheiss)\s+){0,3}(?:idiot|vollidiot|depp|trottel|arschloch|versager|nichtsnutz|"
                      r"wichser|hurensohn|spast|spasti|missgeburt|bastard|penner|vollpfosten|schwachkopf|dummkopf|"
                      r"hure|schlampe|fotze|mongo|dumm|blod|nutzlos|wertlos|armselig)")),
    ("harassment", _p(r"halt (?:die|deine) fresse|halt'?s maul|halt dein maul|fick dich|verpiss dich|leck mich")),
    ("harassment", _p(r"(?:t'es|tes|tu es|t es|vous etes|espece d'|espece de|pauvre) ?(?:(?:un|une|qu'un|qu'une|"
                      r"vraiment|tellement|gros|grosse|sale|putain de|pauvre|vrai|vraie)\s+){0,3}(?:idiot|idiote|"
                      r"imbecile|con|conne|connard|connasse|debile|nul|nulle|abruti|abrutie|cretin|cretine|salaud|"
                      r"salope|merde|minable|batard|encule|pute|pouffiasse|boulet|tocard|naze)")),
    ("harassment", _p(r"ferme ta gueule|ta gueule|ferme[- ]la|va te faire (?:foutre|enculer)|connard|connasse|"
                      r"encule|enculee")),
    ("harassment", _p(r"(?:ty|jestes) (?:(?:jebany|jebana|pierdolony|pierdolona|glupi|glupia|zasrany|zasrana|"
                      r"skonczony|skonczona|cholerny|cholerna|pieprzony|pieprzona)\s+){0,2}(?:idiota|idioto|debil|"
                      r"debilu|kretyn|kretynie|glupek|glupku|frajer|frajerze|cwel|cwelu|chuj|chuju|kurwo|skurwysyn|"
                      r"skurwysynu|smiec|smieciu|matol|matole|dupek|dupku|pajac|pajacu|nieudacznik|nieudaczniku|"
                      r"pizda|szmata|szmato)")),
    ("harassment", _p(r"spierdalaj|wypierdalaj|odpierdol sie|pierdol sie|jeb sie|zamknij (?:morde|ryj|pysk)")),
    # hate: a group, and something dehumanising said of it or wished on it
    ("hate", _p(r"(?:all |those |these |the |most |every )?" + _GROUP + r" (?:are|r|is) (?:(?:all|just|nothing but|"
                r"basically|literally|simply|too|so|such|a bunch of|like)\s+)*" + _DEHUMANISING)),
    ("hate", _p(_GROUP + r" (?:should|must|need to|ought to|deserve to|have to) (?:all )?(?:die|be (?:killed|deported|"
                r"gassed|exterminated|shot|hanged|hung|burned|locked up|sterilized|eradicated|wiped out)|burn|"
                r"go back)")),
    ("hate", _p(_GROUP + r" (?:control|run|own) (?:the )?(?:banks|media|world|government|money|hollywood)")),
    ("hate", _p(r"(?:gas|exterminate|deport|lynch) (?:all )?(?:the )?" + _GROUP)),
    ("hate", _p(r"(?:we|i) (?:don'?t|do not|won'?t|will not|never) (?:hire|work with|rent to|serve) (?:any )?"
                + _GROUP)),
    ("hate", _p(r"chinks?(?! in (?:the|his|her|their|our|its|your|my) arm(?:ou|o)r)")),
    ("hate", _p(r"hitler was right|heil hitler|sieg heil|white power|1488|gas the \w+|back (?:to where they came from|"
                r"across the border|to their (?:own )?countr(?:y|ies))")),
    ("hate", _p(r"(?:los )?(?:inmigrantes|negros|judios|musulmanes|gitanos|moros) son (?:una |unos )?(?:plaga|basura|"
                r"animales|escoria|ratas|parasitos|delincuentes)")),
    ("hate", _p(r"(?:os )?(?:imigrantes|negros|judeus|muculmanos|gays|nordestinos) sao (?:uma |uns )?(?:praga|lixo|"
                r"animais|escoria|ratos|parasitas|bandidos|macacos)")),
    ("hate", _p(r"(?:alle |die )?(?:auslander|fluchtlinge|migranten|juden|muslime|schwarzen|zigeuner|schwulen) sind "
                r"(?:alle )?(?:ungeziefer|tiere|abschaum|ratten|parasiten|kriminelle|dreck|pack)|auslander raus|"
                r"juden raus")),
    ("hate", _p(r"(?:les )?(?:immigres|arabes|noirs|juifs|musulmans|roms) sont (?:des )?(?:animaux|vermines|rats|"
                r"parasites|racailles|sauvages|singes|dechets)")),
    ("hate", _p(r"(?:imigranci|uchodzcy|zydzi|muzulmanie|geje|cyganie|czarni) to (?:zwierzeta|robactwo|pasozyty|"
                r"smiecie|szczury|scierwo|bydlo)")),
    ("sexual", _p(r"send (?:me )?(?:your )?(?:nudes|nude pics|dick pics?|tit pics|noods)")),
]

#: Patterns for letters that were spaced out as a whole sentence ("I w i l l h u r t y o u"):
#: matched only against such joined runs, where the spaces between words are gone too.
SQUASHED: list[tuple[str, re.Pattern[str]]] = [
    ("self-harm", re.compile(r"(?:kill|hang|neck)(?:your|ur)self")),
    ("threat", re.compile(r"(?:iwill|ill|imgonna|imgoingto|iamgoingto|iwanna)"
                          r"(?:kill|hurt|stab|shoot|murder|rape)(?:you|u)")),
    *(("harm-wish", re.compile(pattern)) for pattern in SQUASHED_WISHES),
    ("harassment", re.compile(r"(?:fuck|screw)(?:you|off|yourself)|(?:youare|youre|ur)(?:a|an)?(?:idiot|moron|loser|"
                              r"worthless|useless|stupid|retard|bitch|cunt)")),
]

#: Masked spellings ("f*ck", "sh*t", "a**hole") are compared with these words.
MASKABLE = (
    "fuck", "fucking", "fucker", "fucked", "motherfucker", "shit", "shitty", "bullshit", "bitch", "cunt", "asshole",
    "dickhead", "bastard", "twat", "wanker", "nigger", "nigga", "faggot", "whore", "slut", "pussy", "cock",
)

#: Characters that mean the finger on their own.
PROFANE_SYMBOLS = ("\U0001f595",)
