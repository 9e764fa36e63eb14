"""Source of eval/verifier_cases.jsonl: (claim, sources, supported?) cases for the LLM-answer verifier.

Built from the seed articles' own sentences: faithful versions (the sentence, its attribution moved,
a trailing clause dropped, and paraphrases written by hand) and the ways small models go wrong (a
wrong number, a swapped name, flipped negation, lost attribution, an unsupported addition, a garbled
join, a refusal mixed into an answer, the right claim cited to the wrong source). Deterministic
(seed 7); run it to regenerate the file.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.text import split_sentences  # noqa: E402

rng = random.Random(7)
CASES: list[dict] = []


def case(kind: str, claim: str, sources: list[str], supported: bool, context: str = "") -> None:
    CASES.append({"id": f"v{len(CASES) + 1:03d}", "kind": kind, "claim": claim, "sources": sources,
                  "supported": supported, **({"context": context} if context else {})})


sentences: list[str] = []
for p in sorted((ROOT / "seeds").glob("*.txt")):
    t = p.read_text(encoding="utf-8")
    for a, b in split_sentences(t):
        s = t[a:b]
        if len(s) >= 60 and not s.endswith("?") and s[0].isupper() and not s.isupper() and s.count(" ") >= 9:
            sentences.append(s)
rng.shuffle(sentences)

ATTRIB = re.compile(r"\b(according to|said|says|claimed|reported|reportedly|told|announced|warned|insisted|"
                    r"noted|stated|verified|confirmed|dismissed|accused)\b", re.I)
NAME_SWAP = {"Kursk": "Belgorod", "Sumy": "Kharkiv", "Putin": "Lukashenko", "Zelenskyy": "Poroshenko",
             "Zelensky": "Poroshenko", "Smirnov": "Ivanov", "Gerasimov": "Shoigu", "Sudzha": "Rylsk",
             "Pokrovsk": "Kramatorsk", "Moscow": "Minsk", "Trump": "Biden", "Kuleba": "Sybiha",
             "Donetsk": "Luhansk", "North Korean": "Chinese", "British": "French", "Mali": "Chad",
             "Niger": "Sudan", "Starmer": "Macron", "Africa": "Asia", "Kyiv": "Lviv"}
WORDS = {"three": "five", "two": "four", "half": "a third", "hundreds": "dozens", "four": "seven"}
AUX = re.compile(r"\b(is|are|was|were|has|have|had|will|could|would|can|remain|remains)\b")

# --- faithful: the sentence itself ---------------------------------------------------------------
for s in sentences[:30]:
    case("exact", s, [s], True)

# --- faithful: attribution moved to the front -------------------------------------------------------
for s in sentences:
    m = re.fullmatch(r"(.+?),? according to (.+?)\.", s)
    if m and len(m.group(1).split()) >= 5:
        body = m.group(1)
        case("attribution_moved", f"According to {m.group(2)}, {body}.", [s], True)
    m = re.fullmatch(r"(.+?), ((?:[A-Z][\w’'.-]* ?){1,4}(?:officials|officials said|said|reported)[^,]*)\.", s)
    if m and len(m.group(1).split()) >= 5:
        case("attribution_moved", f"{m.group(2).replace(' said', ' said that', 1)} {m.group(1)}.", [s], True)

# --- faithful: a trailing clause dropped (sentences that attribute nothing) ---------------------------
n = 0
for s in sentences:
    if ATTRIB.search(s) or n >= 25:
        continue
    head, _, tail = s.rpartition(", ")
    starts = ("when ", "which ", "who ", "where ", "amid ", "while ", "including ", "as ", "after ", "following ",
              "with ", "an ", "a ", "both ", "regardless ", "indicating ", "particularly ")
    if head and tail.startswith(starts) and len(head.split()) >= 7 and head.count("“") == head.count("”"):
        case("clause_dropped", head.rstrip(",;") + ".", [s], True)
        n += 1

# --- faithful: paraphrases written by hand ----------------------------------------------------------
PARAPHRASES = [
    ("Russia later deployed about 12,000 North Korean troops in October 2024 to assist in repelling the incursion.",
     "In October 2024 Russia sent about 12,000 troops from North Korea to help push back the incursion."),
    ("The fighting is about 320 miles (500km) from Moscow.", "The fighting is roughly 320 miles from Moscow."),
    ("Smirnov has also called on residents in the region to donate blood following the recent violence.",
     "Smirnov also asked residents of the region to give blood after the violence."),
    ("Ukraine’s military has not officially confirmed the loss of these areas, and independent verification remains challenging due to restricted access to frontline positions.",
     "Ukraine's military has not officially confirmed losing these areas."),
    ("Zelenskyy recently announced the successful deployment of a new long-range missile, known as the “long Neptune,” which has a striking range of 1,000 kilometers (621 miles).",
     "Zelenskyy announced that the new long Neptune missile, with a range of 1,000 kilometers, had been deployed."),
    ("U.S. President Donald Trump has proposed a 30-day ceasefire as a step toward broader negotiations.",
     "Donald Trump proposed a 30-day ceasefire as a step toward wider negotiations."),
    ("Russia’s Defence Ministry announced that its forces had recaptured the villages of Rubanshchina and Zaoleshenka, both near Sudzha.",
     "Russia's Defence Ministry said its forces retook Rubanshchina and Zaoleshenka near Sudzha."),
    ("Acting governor Alexei Smirnov said civilians were being evacuated from the border area as fighting in the region was ongoing, with 300 people housed in temporary accommodation.",
     "Acting governor Alexei Smirnov said civilians were being evacuated, with 300 people in temporary accommodation."),
    ("The Russian Ministry of Defense announced that its forces captured three more settlements.",
     "Russia's Ministry of Defense announced the capture of three more settlements."),
    ("Kiev has lost approximately half of the territory it occupied in Kursk.",
     "Kiev has lost about half of the territory it held in Kursk."),
    ("Reports indicate that Russian forces used a gas pipeline to conduct surprise attacks in the region.",
     "Reports indicate Russian forces used a gas pipeline for surprise attacks in the region."),
    ("Niger became the second African country to cut ties with Ukraine, amid a row over the Kyiv’s alleged support for a rebel attack last month which killed dozens of Malian soldiers and mercenaries from Russia’s Wagner Group.",
     "Niger became the second African country to cut ties with Ukraine, over Kyiv's alleged support for a rebel attack."),
    ("Zelenskyy has insisted that Ukrainian forces are not trapped in Kursk.",
     "Zelenskyy insisted Ukrainian forces in Kursk are not trapped."),
    ("The General Staff of the UKrainian armt reported 42 combat clashes on the Pokrovsk front - the most of any frontline across Ukraine in the 24 hours until Wednesday morning.",
     "The General Staff reported 42 combat clashes on the Pokrovsk front, the most of any front."),
    ("Moscow has been attempting to push Ukrainian forces from the 115-square-mile salient through “slow, grinding advances” since Kyiv’s forces first seized the ground in a surprise August 2024 operation.",
     "Moscow has been trying to push Ukrainian forces out of the 115-square-mile salient seized in August 2024."),
    ("Army chief of staff Valery Gerasimov told Putin at the meeting via video link that about 100 Ukrainian soldiers had been killed in the battle and more than 200 wounded, Russian news agencies reported.",
     "Gerasimov told Putin that about 100 Ukrainian soldiers had been killed and more than 200 wounded, Russian news agencies reported."),
    ("Ukrainian officials see the occupied land in Kursk as a key bargaining chip in forcing Russia to withdraw from some of the territory it now controls in Ukraine’s east and south.",
     "Ukrainian officials see the occupied land in Kursk as a key bargaining chip."),
    ("British Prime Minister Keir Starmer has stated that European defense officials will meet in the coming days to solidify “robust plans” for supporting Kyiv, regardless of whether a ceasefire is agreed upon.",
     "Keir Starmer stated that European defense officials will meet to solidify robust plans for supporting Kyiv."),
    ("Putin met with his top defense and security officials on Wednesday and instructed the Cabinet to coordinate assistance to the Kursk region.",
     "On Wednesday Putin instructed the Cabinet to coordinate assistance to the Kursk region."),
    ("Mali also announced two days ago that they had severed diplomatic ties, in a decision which Ukraine described as “short-sighted and hasty”.",
     "Ukraine described Mali's decision to sever diplomatic ties as short-sighted and hasty."),
    ("Foreign minister Dmytro Kuleba has nevertheless been on a tour in Africa, meeting Malawian President Lazarus Chakwera on Monday before meeting his Zambian counterpart yesterday - where the two foreign ministers signed a “memorandum of understanding”.",
     "Dmytro Kuleba met Malawian President Lazarus Chakwera on Monday during a tour in Africa."),
    ("To conclude the three-stop tour, Kuleba will visit Mauritius later this week.",
     "Kuleba will end his three-stop tour in Mauritius later this week."),
    ("In one of the most audacious maneuvers of the conflict, Ukrainian troops seized control of over 100 settlements, including strategic areas near the town of Sudzha.",
     "Ukrainian troops seized control of over 100 settlements, including areas near Sudzha."),
    ("The Russian Emergencies Ministry has reported that over 300 residents have been evacuated from conflict zones near Sudzha, indicating the intensity of the battles in the region.",
     "The Russian Emergencies Ministry reported that over 300 residents were evacuated from near Sudzha."),
    ("Russian troops successfully repelled three Ukrainian attempts to breach the border in the Kursk region over the past 24 hours, according to the Russian Defence Ministry.",
     "The Russian Defence Ministry said Russian troops repelled three Ukrainian attempts to breach the border in the Kursk region."),
    ("The Kursk attack was embarrassing for Moscow and raised questions about its ability to protect its borders.",
     "The Kursk attack embarrassed Moscow and raised questions about how well it can protect its borders."),
    ("Russian supply lines around the strategic Ukrainian crossroads city of Pokrovsk in the disputed Donetsk region have also been severely degraded by enemy drone attacks, British officials said.",
     "British officials said Russian supply lines around Pokrovsk have been severely degraded by drone attacks."),
    ("This operation marked the first time foreign troops had held Russian territory since World War II, a symbolic and tactical victory for Ukraine.",
     "The operation was the first time since World War II that foreign troops had held Russian territory."),
    ("Several Ukrainian brigades stationed along the border region said they could not comment.",
     "Several Ukrainian brigades along the border said they could not comment."),
    ("Meanwhile, U.S. President Donald Trump is pressuring Kiev for negotiations by halting military aid and intelligence sharing.",
     "Donald Trump is pressuring Kiev to negotiate by halting military aid and intelligence sharing."),
]
for src, claim in PARAPHRASES:
    case("paraphrase", claim, [src], True)
    sentences.append(src)
sentences = list(dict.fromkeys(sentences))

# --- unsupported: a wrong number ------------------------------------------------------------------
n = 0
for s in sentences:
    m = re.search(r"\b\d[\d,]*\b", s)
    if m and n < 30:
        v = int(m.group(0).replace(",", ""))
        wrong = f"{v * 2 + 7:,}" if "," in m.group(0) else str(v * 2 + 7)
        case("wrong_number", s[: m.start()] + wrong + s[m.end():], [s], False)
        n += 1
    else:
        for w, r in WORDS.items():
            if re.search(rf"\b{w}\b", s) and n < 30:
                case("wrong_number", re.sub(rf"\b{w}\b", r, s, count=1), [s], False)
                n += 1
                break

# --- unsupported: a swapped name --------------------------------------------------------------------
n = 0
for s in sentences:
    for name, other in NAME_SWAP.items():
        if name in s and other not in s and n < 30:
            case("swapped_name", s.replace(name, other, 1), [s], False)
            n += 1
            break

# --- unsupported: flipped negation --------------------------------------------------------------------
n = 0
for s in sentences:
    if n >= 25:
        break
    if re.search(r"\b(?:has|have|had|did|does|is|are|was|were|could|would) not\b", s):
        case("flipped_negation", re.sub(r"\b(has|have|had|did|does|is|are|was|were|could|would) not\b", r"\1",
                                        s, count=1), [s], False)
        n += 1
    elif not re.search(r"\bnot\b|n’t|n't|\bno\b|\bnever\b", s):
        m = AUX.search(s)
        if m and m.start() < len(s) // 2:
            case("flipped_negation", s[: m.end()] + " not" + s[m.end():], [s], False)
            n += 1

# --- unsupported: lost attribution -------------------------------------------------------------------
n = 0
for s in sentences:
    if n >= 25:
        break
    m = re.fullmatch(r"(.+?),? according to .+?\.", s)
    if m and len(m.group(1).split()) >= 6 and not ATTRIB.search(m.group(1)):
        case("lost_attribution", m.group(1) + ".", [s], False)
        n += 1
        continue
    m = re.fullmatch(r"(.+?), (?:[\w’'.-]+ ){0,4}(?:said|reported|noted|claimed)[^,]*\.", s)
    if m and len(m.group(1).split()) >= 6 and not ATTRIB.search(m.group(1)):
        case("lost_attribution", m.group(1) + ".", [s], False)
        n += 1
        continue
    m = re.fullmatch(r"(?:[A-Z][\w’'.-]* ){1,6}(?:said|says|reported|warned|announced|claimed) that (.+)", s)
    if m and len(m.group(1).split()) >= 6 and not ATTRIB.search(m.group(1)):
        body = m.group(1)
        case("lost_attribution", body[0].upper() + body[1:], [s], False)
        n += 1

# --- unsupported: an addition the source does not make -----------------------------------------------
ADDITIONS = [", killing 40 civilians", " after talks in Geneva", ", a move condemned by the United Nations",
             " with the help of 5,000 mercenaries", ", and Germany pledged new tanks", " despite heavy snow in January",
             ", which the Pentagon later confirmed", " for the third time in 2023"]
for i, s in enumerate(sentences[5:35]):
    case("addition", s.rstrip(".") + ADDITIONS[i % len(ADDITIONS)] + ".", [s], False)

# --- unsupported: garbled joins and refusals mixed into an answer --------------------------------------
for i, s in enumerate(sentences[40:55]):
    words = s.split()
    half = " ".join(words[: len(words) // 2])
    other = " ".join(sentences[(i + 60) % len(sentences)].split()[-6:])
    case("garbled", f"{half} according to, while {other}", [s], False)
for s in sentences[55:67]:
    case("refusal_mixed", f"The articles don't cover this, but {s[0].lower() + s[1:]}", [s], False)
for s in sentences[67:75]:
    case("garbled", f"The articles don't cover this. and {s[0].lower() + s[1:]}", [s], False)

# --- unsupported: the claim cited to the wrong source ----------------------------------------------------
for i, s in enumerate(sentences[75:100]):
    case("wrong_source", s, [sentences[(i + 40) % 75]], False)

# --- who the speaker is (added after the Qwen 1.5B run): the source's own description of its speaker needs
# no attribution, but "reportedly" names no speaker, so what comes before it still does ----------------------
SPEAKER = [
    ("The surprise incursion began on Tuesday morning, when hundreds of Ukrainian troops reportedly entered the "
     "Kursk region according to Russia’s Defence Ministry and the area’s governor, Alexei Smirnov.",
     "The Kursk governor is Alexei Smirnov.", True),
    ("The surprise incursion began on Tuesday morning, when hundreds of Ukrainian troops reportedly entered the "
     "Kursk region according to Russia’s Defence Ministry and the area’s governor, Alexei Smirnov.",
     "Hundreds of Ukrainian troops entered the Kursk region on Tuesday morning.", False),
    ("Acting governor Alexei Smirnov said civilians were being evacuated from the border area as fighting in the "
     "region was ongoing, with 300 people housed in temporary accommodation.",
     "Alexei Smirnov is the acting governor.", True),
    ("Acting governor Alexei Smirnov said civilians were being evacuated from the border area as fighting in the "
     "region was ongoing, with 300 people housed in temporary accommodation.",
     "Civilians were being evacuated from the border area.", False),
    ("Ukrainian outlets reported that Andriy Yusov, spokesperson for Ukraine’s military intelligence agency GUR, "
     "had admitted Kyiv’s support for the Tuareg rebels who claimed responsibility for the attack on Mali’s border "
     "with Algeria.", "Andriy Yusov admitted Kyiv’s support for the Tuareg rebels.", False),
]
for src, claim, ok in SPEAKER:
    case("speaker" if ok else "lost_attribution", claim, [src], ok)

# --- a different qualifier on the same noun (added after the second Qwen 1.5B run: "The defence minister of
# Russia is Dmytro Kuleba" from "Foreign minister Dmytro Kuleba …"): one lowercase modifier of a noun phrase
# swapped for another the articles put before the same noun; plus the run's own mistakes and their faithful
# versions -----------------------------------------------------------------------------------------------
DET = r"(?:^|\b(?:the|a|an|its|their|his|her|of|in|on|for|from|with|by)\s)"
NP = re.compile(DET + r"([a-z]{4,})\s([a-z]{4,})\b")
STOP = {"that", "this", "with", "from", "have", "been", "were", "which", "some", "more", "most", "many", "other",
        "about", "over", "into", "after", "before", "first", "last", "such", "same", "each", "both", "than",
        "these", "those", "their", "several", "various", "also", "only", "very"}
heads: dict[str, set[str]] = {}
for s in sentences:
    for m in NP.finditer(s):
        if m.group(1) not in STOP and m.group(2) not in STOP:
            heads.setdefault(m.group(2), set()).add(m.group(1))
n = 0
for s in sentences[::-1]:
    for m in NP.finditer(s):
        mod, head = m.group(1), m.group(2)
        others = sorted(heads.get(head, set()) - {mod} - set(s.lower().split()) - STOP)
        if mod in STOP or not others or n >= 20:
            continue
        swapped = s[: m.start(1)] + rng.choice(others) + s[m.end(1):]
        case("qualifier_swap", swapped, [s], False)
        n += 1
        break
KULEBA = ("Foreign minister Dmytro Kuleba has nevertheless been on a tour in Africa, meeting Malawian President "
          "Lazarus Chakwera on Monday before meeting his Zambian counterpart yesterday - where the two foreign "
          "ministers signed a “memorandum of understanding”.")
SMIRNOV = ("The surprise incursion began on Tuesday morning, when hundreds of Ukrainian troops reportedly entered the "
           "Kursk region according to Russia’s Defence Ministry and the area’s governor, Alexei Smirnov.")
TITLE = "Intense battles after major cross-border raid by Ukraine into Russia’s Kursk region"  # the verifier's context
ACTING = ("Acting governor Alexei Smirnov said civilians were being evacuated from the border area as fighting in the "
          "region was ongoing, with 300 people housed in temporary accommodation.")
DEFENSE = ("Putin met with his top defense and security officials on Wednesday and instructed the Cabinet to "
           "coordinate assistance to the Kursk region.")
MAURITIUS = "To conclude the three-stop tour, Kuleba will visit Mauritius later this week."
REAL = [
    (KULEBA, "The defence minister of Russia is Dmytro Kuleba.", False, ""),
    (KULEBA, "The foreign minister Dmytro Kuleba has been on a tour in Africa.", True, ""),
    (SMIRNOV, "The governor of the Sumy region is Alexei Smirnov.", False, TITLE),
    (SMIRNOV, "The governor of the Kursk region is Alexei Smirnov.", True, TITLE),
    (ACTING, "The governor of the Sumy region is Alexei Smirnov.", False, TITLE),
    (MAURITIUS, "Kuleba visited Mauritius later this week.", False, ""),
    (MAURITIUS, "Kuleba will visit Mauritius later this week to conclude his three-stop tour.", True, ""),
    (MAURITIUS, "Kuleba is expected to visit Mauritius later this week.", True, ""),  # weaker, still supported
]
for src, claim, ok, ctx in REAL:
    case("speaker" if ok and "governor" in claim else "paraphrase" if ok else
         "plan_as_fact" if "Mauritius" in claim else "qualifier_swap" if "Sumy" not in claim else "swapped_name",
         claim, [src], ok, ctx)
case("qualifier_swap", "The defence minister of Russia is Dmytro Kuleba.", [DEFENSE, KULEBA], False, TITLE)
# close in meaning, few words in common: kept only when a figure anchors it to the same fact
case("paraphrase", "The distance between the Kursk fighting and the Russian capital is 320 miles (500 km) from Moscow.",
     ["The fighting is about 320 miles (500km) from Moscow."], True, TITLE)
case("wrong_relation", "The forces fighting alongside Russian troops in Kursk are Ukrainian forces.",
     ["Ukraine resists Russian advances in Kursk as battle for strategic territory intensifies"], False, TITLE)

# a name put where the source has another one, before the same words (Qwen 1.5B, q032); the faithful version
NIGER = ("Meanwhile, it was a difficult day for Kyiv in diplomatic terms, as Niger became the second African country "
         "to cut ties with Ukraine, amid a row over the Kyiv’s alleged support for a rebel attack last month which "
         "killed dozens of Malian soldiers and mercenaries from Russia’s Wagner Group.")
case("swapped_name", "Kyiv became the second African country to cut ties with Ukraine.", [NIGER], False, "")
case("paraphrase", "Niger became the second African country to cut ties with Ukraine.", [NIGER], True, "")
case("swapped_name", "Mali became the second African country to cut ties with Ukraine over the rebel attack.",
     [NIGER, "Mali cut diplomatic ties with Ukraine last week."], False, "")

if __name__ == "__main__":
    out = Path(__file__).with_name("verifier_cases.jsonl")
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in CASES), encoding="utf-8")
    from collections import Counter

    print(f"wrote {len(CASES)} cases to {out}: {dict(Counter(c['kind'] for c in CASES))}")
