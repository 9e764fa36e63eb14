"""Source of eval/questions.jsonl (kept as Python for readability; run it to regenerate the JSONL).

Each question: id, category, question, answerable, required (list of facts; each fact is a list of
accepted forms, a form starting with "re:" is a regex), wrong (values that must not appear), support
(files with a verbatim quote that supports the answer) and, for disagreements, sides (each article's own
value). Written by reading the five articles in seeds/.
"""

from __future__ import annotations

import json
from pathlib import Path

A0, A1, A2, A3, A4 = (
    "000_b6f1711b44fb3f20.txt",
    "001_3dda18fb8d650828.txt",
    "002_5fe3474391e77e48.txt",
    "003_66a1545cc8f86729.txt",
    "004_c0d30e5268775e61.txt",
)

Q: list[dict] = []


def q(cat: str, question: str, required: list[list[str]] | None = None, support: list[tuple[str, str]] | None = None,
      wrong: list[str] | None = None, sides: list[dict] | None = None, answerable: bool = True) -> None:
    Q.append({
        "id": f"q{len(Q) + 1:03d}",
        "category": cat,
        "question": question,
        "answerable": answerable,
        "required": required or [],
        "wrong": wrong or [],
        "support": [{"source": s, "quote": t} for s, t in (support or [])],
        "sides": sides or [],
    })


# --- single facts ---------------------------------------------------------------------------------
q("single_fact", "What did Putin accuse Kyiv of after the incursion?", [["major provocation"]],
  [(A1, "prompting the Russian president to accuse Kyiv of a “major provocation”")])
q("single_fact", "What did Russian forces use to conduct surprise attacks in the Kursk region?", [["gas pipeline"]],
  [(A4, "Russian forces used a gas pipeline to conduct surprise attacks in the region")])
q("single_fact", "Which villages near Sudzha did Russia say it recaptured?", [["Rubanshchina"], ["Zaoleshenka"]],
  [(A3, "recaptured the villages of Rubanshchina and Zaoleshenka, both near Sudzha")])
q("single_fact", "Which think tank geolocated abandoned armoured vehicles in the Kursk region?",
  [["Institute for the Study of War", "ISW"]],
  [(A1, "the Institute for the Study of War, said they had geolocated a number of abandoned armoured vehicles")])
q("single_fact", "What did the acting governor call on residents of the region to donate?", [["blood"]],
  [(A1, "Smirnov has also called on residents in the region to donate blood")])
q("single_fact", "What is the name of the new long-range missile Ukraine deployed?", [["long Neptune"]],
  [(A3, "a new long-range missile, known as the “long Neptune,”")])
q("single_fact", "How were the Ukrainian forces pushed back at the border, according to the Defence Ministry?",
  [["artillery"]],
  [(A0, "were ultimately pushed back by heavy artillery fire and ground forces")])
q("single_fact", "Which Ukrainian region borders the Kursk region?", [["Sumy"]],
  [(A1, "which borders the Sumy region of northeast Ukraine"), (A3, "Sumy region, which borders Kursk")])
q("single_fact", "Which Russian ministry reported evacuations of residents near Sudzha?", [["Emergencies Ministry"]],
  [(A3, "The Russian Emergencies Ministry has reported that over 300 residents have been evacuated")])
q("single_fact", "What did Niger do in its row with Ukraine?", [["re:cut ties|severed"]],
  [(A1, "Niger became the second African country to cut ties with Ukraine")])

# --- numbers ----------------------------------------------------------------------------------------
q("number", "How many North Korean troops did Russia deploy to Kursk?", [["12,000", "12000", "12 000"]],
  [(A2, "Russia later deployed about 12,000 North Korean troops in October 2024")])
q("number", "How large is the Ukrainian-held salient in Kursk?", [["115"]],
  [(A2, "the 115-square-mile salient")])
q("number", "How far is the fighting in Kursk from Moscow?", [["320 miles", "500km", "500 km"]],
  [(A1, "The fighting is about 320 miles (500km) from Moscow.")])
q("number", "How many Ukrainian soldiers did Gerasimov say had been killed?", [["100"]],
  [(A1, "about 100 Ukrainian soldiers had been killed in the battle")], wrong=["12,000"])
q("number", "How many Ukrainian soldiers were wounded according to Gerasimov?", [["200"]],
  [(A1, "more than 200 wounded")])
q("number", "What is the range of the long Neptune missile?", [["1,000 kilometers", "1,000 km", "621 miles", "1000 km"]],
  [(A3, "which has a striking range of 1,000 kilometers (621 miles)")])
q("number", "How many combat clashes were reported on the Pokrovsk front?", [["42"]],
  [(A1, "reported 42 combat clashes on the Pokrovsk front")])
q("number", "How many combat clashes were recorded across all the fronts?", [["136"]],
  [(A1, "At least 136 combat clashes were recorded across 10 fronts")])
q("number", "How long is the front line, according to the report on the cross-border raid?", [["600 miles"]],
  [(A1, "the front line, which is more than 600 miles long")])
q("number", "How many Ukrainian attempts to breach the border did Russian troops repel?", [["three", "3"]],
  [(A0, "Russian troops successfully repelled three Ukrainian attempts to breach the border")])
q("number", "How long a ceasefire did Donald Trump propose?", [["30-day", "30 day", "30 days"]],
  [(A3, "U.S. President Donald Trump has proposed a 30-day ceasefire")])
q("number", "How far inside the Russian border could Ukrainian troops be?", [["nine miles", "15km", "15 km", "9 miles"]],
  [(A1, "could be as far as nine miles (15km) inside the border")])
q("number", "How many people were housed in temporary accommodation?", [["300"]],
  [(A1, "with 300 people housed in temporary accommodation")])
q("number", "How many settlements did Ukrainian troops seize in their Kursk operation?", [["100"]],
  [(A3, "Ukrainian troops seized control of over 100 settlements")])
q("number", "How far is Pokrovsk from Donetsk city?", [["70km", "70 km"]],
  [(A1, "around 70km northwest of Donetsk city")])

# --- names ------------------------------------------------------------------------------------------
q("name", "Who is the acting governor of the Kursk region?", [["Smirnov"]],
  [(A1, "Acting governor Alexei Smirnov said civilians were being evacuated")])
q("name", "Who is the Russian army chief of staff who briefed Putin?", [["Gerasimov"]],
  [(A1, "Army chief of staff Valery Gerasimov told Putin")])
q("name", "Who is the spokesperson of Ukraine's military intelligence agency GUR?", [["Yusov"]],
  [(A1, "Andriy Yusov, spokesperson for Ukraine")])
q("name", "Which British Prime Minister spoke about robust plans for supporting Kyiv?", [["Starmer"]],
  [(A3, "British Prime Minister Keir Starmer has stated")])
q("name", "Which governor reported people killed by shelling in the Donetsk region?", [["Filashkin"]],
  [(A1, "governor Vadym Filashkin said on Telegram")])
q("name", "Which Malawian president did Dmytro Kuleba meet?", [["Chakwera"]],
  [(A1, "meeting Malawian President Lazarus Chakwera on Monday")])
q("name", "Which country became the second African country to cut ties with Ukraine?", [["Niger"]],
  [(A1, "Niger became the second African country to cut ties with Ukraine")])
q("name", "Where will Kuleba go to conclude his three-stop tour of Africa?", [["Mauritius"]],
  [(A1, "Kuleba will visit Mauritius later this week")])

# --- who said -----------------------------------------------------------------------------------------
q("who_said", "Who said Russia is stepping up a concerted drive to push Ukrainian forces out of Kursk?",
  [["British officials"]],
  [(A2, "Russian border territory in the Kursk region, British officials said Monday")])
q("who_said", "According to whom did Russian troops repel three Ukrainian attempts to breach the border?",
  [["Defence Ministry", "Defense Ministry"]],
  [(A0, "over the past 24 hours, according to the Russian Defence Ministry")])
q("who_said", "Who claimed that Ukrainian troops control three villages in the Sudzha district?",
  [["Telegram"]],
  [(A1, "Telegram Channels affiliated with Russia’s Defence Ministry have claimed")])
q("who_said", "Who reported that Ukrainian troops could be nine miles inside the border?",
  [["military bloggers"]],
  [(A1, "according to unverified reports from Russian military bloggers")])
q("who_said", "Who said Russian forces have made only gradual gains in reclaiming their territory?",
  [["Institute for the Study of War", "ISW"]],
  [(A2, "according to the Institute for the Study of War")])
q("who_said", "Who announced that Russian forces captured three more settlements?",
  [["Ministry of Defense", "Defence Ministry", "Defense Ministry"]],
  [(A4, "The Russian Ministry of Defense announced that its forces captured three more settlements")])
q("who_said", "According to which news outlet is Russia targeting the town of Suvca?", [["CNN"]],
  [(A4, "According to the American news outlet CNN, Russia is targeting the town of Suvca")])
q("who_said", "Who dismissed reports that Ukrainian troops in Kursk are encircled?", [["Zelenskyy", "Zelensky"]],
  [(A3, "President Volodymyr Zelenskyy has dismissed reports that Ukrainian troops are encircled")])

# --- answers that changed over time ----------------------------------------------------------------------
q("changed_over_time", "Who controls the town of Sudzha now?", [["re:secured Sudzha"]],
  [(A3, "the ministry also claimed that Russian troops had fully secured Sudzha itself".replace("the ministry", "The ministry"))])
q("changed_over_time", "How much of the territory it seized in Kursk has Ukraine lost?", [["half"]],
  [(A4, "Kiev has lost approximately half of the territory it occupied in Kursk")])
q("changed_over_time", "What happened to the northern tip of the Ukrainian position in Kursk?", [["collaps"]],
  [(A2, "Russian troops have succeeded in “collapsing” the northern tip of the Ukrainian position")])
q("changed_over_time", "Has Russia been retaking territory in Kursk?",
  [["re:gradual gains|recaptured|captured three more settlements|half of the territor"]],
  [(A2, "Russian forces have made only “gradual gains” to reclaim their territory"),
   (A4, "The Russian Ministry of Defense announced that its forces captured three more settlements")])
q("changed_over_time", "When did Russia deploy North Korean troops to Kursk?", [["October 2024"]],
  [(A2, "Russia later deployed about 12,000 North Korean troops in October 2024")])

# --- the articles disagree --------------------------------------------------------------------------------
q("conflict", "How many villages or settlements did Ukrainian troops control in Kursk?",
  [["three", "3"], ["100"]],
  [(A1, "Ukrainian troops are in control of three villages in the Sudzha district"),
   (A3, "Ukrainian troops seized control of over 100 settlements")],
  sides=[{"source": A1, "value": ["three villages"]}, {"source": A3, "value": ["100 settlements"]}])
q("conflict", "Was the Ukrainian incursion into Kursk repelled?",
  [["re:repelled|thwarted"], ["re:still ongoing|ongoing"]],
  [(A0, "all attempted incursions successfully thwarted"),
   (A1, "the attack was still ongoing")],
  sides=[{"source": A0, "value": ["re:thwarted|repelled"]}, {"source": A1, "value": ["still ongoing"]}])
q("conflict", "How many settlements has Russia recaptured in Kursk recently?",
  [["re:Rubanshchina|Zaoleshenka"], ["three more settlements"]],
  [(A3, "recaptured the villages of Rubanshchina and Zaoleshenka"),
   (A4, "its forces captured three more settlements")],
  sides=[{"source": A3, "value": ["re:Rubanshchina|Zaoleshenka"]}, {"source": A4, "value": ["three more settlements"]}])
q("conflict", "Has Moscow confirmed that North Korean troops are fighting in Kursk?",
  [["re:not officially confirmed"], ["12,000"]],
  [(A3, "Moscow has not officially confirmed the presence of North Korean soldiers"),
   (A2, "Russia later deployed about 12,000 North Korean troops")],
  sides=[{"source": A3, "value": ["not officially confirmed"]}, {"source": A2, "value": ["12,000"]}])

# --- multi-article ----------------------------------------------------------------------------------------
q("multi_article", "What did Donald Trump do that affected Ukraine?",
  [["intelligence"], ["ceasefire"]],
  [(A2, "President Trump’s partial suspension of U.S. intelligence-sharing with Kyiv"),
   (A3, "U.S. President Donald Trump has proposed a 30-day ceasefire")])
q("multi_article", "Why did Ukraine launch the Kursk operation?",
  [["re:supply lines|buffer zone|exchanged|redirect|bargaining"]],
  [(A3, "Kyiv’s objective was to disrupt Russian military supply lines and establish a buffer zone"),
   (A4, "The operation aimed to obtain gains that could be exchanged with the territories occupied by Russia")])
q("multi_article", "When did Ukrainian forces first enter the Kursk region?", [["August"]],
  [(A3, "since August 2024, when Ukrainian forces launched a surprise cross-border operation"),
   (A4, "Ukraine made a surprise attack on Kursk in August")], wrong=["June 2023"])
q("multi_article", "Why was the Kursk operation historically significant?", [["World War II"]],
  [(A3, "the first time foreign troops had held Russian territory since World War II"),
   (A4, "marking the first ground operation against Russia by a foreign force since World War II")])
q("multi_article", "Which forces are fighting alongside Russian troops in Kursk?", [["North Korea"]],
  [(A4, "Russian and North Korean forces in the Kursk region"),
   (A3, "with apparent support from North Korean military personnel")])

# --- paraphrases and typos --------------------------------------------------------------------------------
q("paraphrase", "How many soldiers from North Korea has Moscow sent to the Kursk area?", [["12,000"]],
  [(A2, "Russia later deployed about 12,000 North Korean troops")])
q("paraphrase", "What is the strike range of Ukraine's long Neptune?", [["1,000 kilometers", "621 miles"]],
  [(A3, "which has a striking range of 1,000 kilometers (621 miles)")])
q("paraphrase", "What is the distance between the Kursk fighting and the Russian capital?", [["320 miles", "500km"]],
  [(A1, "The fighting is about 320 miles (500km) from Moscow.")])
q("typo", "how many north korean trops did rusia send to kursk", [["12,000"]],
  [(A2, "Russia later deployed about 12,000 North Korean troops")])
q("typo", "Who is the Kursk governer?", [["Smirnov"]],
  [(A1, "Acting governor Alexei Smirnov said civilians were being evacuated")])
q("typo", "Wich villages did Rusia recapture near Sudzha?", [["Rubanshchina"], ["Zaoleshenka"]],
  [(A3, "recaptured the villages of Rubanshchina and Zaoleshenka, both near Sudzha")])

# --- false premises ----------------------------------------------------------------------------------------
q("false_premise", "Why did Russia deploy 50,000 North Korean troops to Kursk?", [["12,000"]],
  [(A2, "Russia later deployed about 12,000 North Korean troops")], wrong=["50,000"])
q("false_premise", "Why did Ukraine's military confirm the loss of Sudzha?", [["re:not officially confirmed"]],
  [(A3, "Ukraine’s military has not officially confirmed the loss of these areas")])
q("false_premise", "Why did the long Neptune missile fail with its 100 km range?", [["1,000"]],
  [(A3, "which has a striking range of 1,000 kilometers (621 miles)")], wrong=["100 km"])
q("false_premise", "When did Zelensky visit the troops in Sudzha?", answerable=False)

# --- not in the articles -------------------------------------------------------------------------------------
for text in [
    "What is the capital of France?",
    "Who won the 2018 FIFA World Cup?",
    "How do I bake sourdough bread?",
    "What is the price of Brent crude oil today?",
    "How many tanks did Ukraine lose in Kursk?",
    "What is the population of the city of Kursk?",
    "How many North Korean soldiers were killed in Kursk?",
    "What did China say about the Kursk incursion?",
    "How much military aid did Germany send to Ukraine in 2024?",
    "Who commands Ukraine's forces in the Kursk operation?",
    "How many drones did Russia launch at Kyiv last night?",
    "What happened at the Kursk nuclear power plant?",
    "Which Ukrainian brigade led the incursion into Kursk?",
]:
    q("unanswerable", text, answerable=False)


# ============ added with the sentence-level answerer (issue 14) ======================================
def ov(question: str, required: list[list[str]], min_sources: int, answerable: bool = True) -> None:
    """A broad question: answered with an overview of >= min_sources articles, each sentence cited."""
    q("overview", question, required, answerable=answerable)
    Q[-1]["min_sources"] = min_sources


# --- broad questions: an overview from several articles -----------------------------------------------
ov("What's going on with the fighting in Kursk?", [["re:Kursk"]], 3)
ov("Give me an overview of the Kursk incursion.", [["re:Kursk"]], 3)
ov("Summarize what the articles say about North Korean troops.", [["re:North Korea"]], 2)
ov("What is happening with Sudzha?", [["re:Sudzha"]], 2)
ov("Tell me about the long Neptune missile.", [["re:Neptune"]], 1)
ov("Give me an overview of the ceasefire talks.", [["re:ceasefire"]], 2)
ov("What's the situation in Pokrovsk?", [["re:Pokrovsk"]], 2)
ov("Summarise the diplomatic fallout in Africa.", [["re:Mali|Niger|Africa"]], 1)
ov("Give me an overview of the Brazilian election.", [], 0, answerable=False)
ov("What's going on with Taiwan?", [], 0, answerable=False)

# --- paraphrases that share (almost) no content word with their sentence --------------------------------
q("paraphrase", "What distance separates the combat from the Russian capital?", [["320 miles", "500km"]],
  [(A1, "The fighting is about 320 miles (500km) from Moscow.")])
q("paraphrase", "How many evacuees were put up in makeshift lodging?", [["300"]],
  [(A1, "with 300 people housed in temporary accommodation")])
q("paraphrase", "What did the regional head urge locals to give?", [["blood"]],
  [(A1, "Smirnov has also called on residents in the region to donate blood")])
q("paraphrase", "How many Ukrainians died in the clash, per the top general?", [["100"]],
  [(A1, "about 100 Ukrainian soldiers had been killed in the battle")])
q("paraphrase", "Which African nation followed Mali in breaking off relations?", [["Niger"]],
  [(A1, "Niger became the second African country to cut ties with Ukraine")])
q("paraphrase", "What route did Moscow's soldiers sneak through for ambushes?", [["gas pipeline"]],
  [(A4, "Russian forces used a gas pipeline to conduct surprise attacks in the region")])
q("paraphrase", "How big is the pocket Kyiv's army holds?", [["115"]],
  [(A2, "115-square-mile salient")])
q("paraphrase", "How much ground has Kyiv given up?", [["half"]],
  [(A4, "Kiev has lost approximately half of the territory it occupied in Kursk.")])
q("paraphrase", "Which group of analysts spotted deserted tanks and carriers from satellite pictures?",
  [["Institute for the Study of War"]],
  [(A1, "the Institute for the Study of War, said they had geolocated a number of abandoned armoured vehicles")])
q("paraphrase", "What new weapon did Kyiv's arms makers field recently?", [["long Neptune"]],
  [(A3, "the successful deployment of a new long-range missile, known as the “long Neptune,”")])

# --- the question pins a year, month or quarter the articles do not match: refuse ----------------------
for text in [
    "How many North Korean troops did Russia deploy in October 2023?",
    "When did Ukrainian forces enter Kursk in 2022?",
    "How many combat clashes were reported on the Pokrovsk front in 2021?",
    "What did Putin say about the Kursk incursion in 2019?",
    "How many Ukrainian soldiers were killed in Kursk in January?",
    "Who was the governor of Kursk in 2015?",
    "What happened in Kursk in the first quarter of 2023?",
    "What was the Q3 2024 budget of the Kursk region?",
    "How far is the fighting from Moscow according to the 2021 report?",
    "Which villages did Russia recapture near Sudzha in 2022?",
]:
    q("constraint_mismatch", text, answerable=False)

# --- near misses: the same names and topic, not the asked fact: refuse ---------------------------------
for text in [
    "How many North Korean troops were wounded in Kursk?",
    "What is the range of the short Neptune missile?",
    "How many Russian soldiers did Gerasimov say had been killed?",
    "Who is the governor of the Sumy region?",
    "How many residents were evacuated from Belgorod?",
    "When did Ukraine withdraw from Sudzha?",
    "How much did the United States pay for the Kursk operation?",
    "What is the population of Sudzha?",
    "How many drones did Ukraine produce last year?",
    "Which country did Kuleba visit after Mauritius?",
    "How many North Korean troops did Russia deploy to Belgorod?",
    "Who is the defence minister of Russia?",
    "Kurskxqzvbnm troopsqqqq?",
]:
    q("near_miss", text, answerable=False)

# --- identifiers and acronyms ------------------------------------------------------------------------------
q("identifier", "What is GUR?", [["military intelligence"]],
  [(A1, "Ukraine’s military intelligence agency GUR")])
q("identifier", "What did ISW analysts call the correlation with Trump's suspension of intelligence-sharing?",
  [["noteworthy"]], [(A2, "was “noteworthy.”")])
q("identifier", "What did U.K. officials say about opportunities for Ukrainian counteroffensives?",
  [["improved"]], [(A2, "“Opportunities for Ukrainian counteroffensives have been improved")])
q("identifier", "What is CNN reporting about Suvca?", [["supply route"]],
  [(A4, "Russia is targeting the town of Suvca on the border in order to cut off a crucial supply route")])
q("identifier", "What did Yusov tell the Financial Times?", [["no such statement"]],
  [(A1, "he told the Financial Times that he had made “no such statement”")])

# --- more single facts, numbers and names ---------------------------------------------------------------
q("single_fact", "What did Zelenskyy insist about Ukrainian forces in Kursk?", [["not trapped"]],
  [(A3, "Zelenskyy has insisted that Ukrainian forces are not trapped in Kursk")])
q("number", "How many settlements did Russia's Ministry of Defense say its forces captured?", [["three", "3"]],
  [(A4, "The Russian Ministry of Defense announced that its forces captured three more settlements.")])
q("single_fact", "What did Keir Starmer say European defense officials would solidify?", [["robust plans"]],
  [(A3, "solidify “robust plans” for supporting Kyiv")])
q("single_fact", "What did Trump propose as a step toward broader negotiations?", [["30-day ceasefire"]],
  [(A3, "U.S. President Donald Trump has proposed a 30-day ceasefire as a step toward broader negotiations.")])
q("single_fact", "What demand did Putin attach to his support for a ceasefire?", [["withdrawal of Ukrainian troops"]],
  [(A3, "including the withdrawal of Ukrainian troops from contested areas")])
q("name", "Which rebels did Ukraine's military intelligence reportedly support?", [["Tuareg"]],
  [(A1, "Kyiv’s support for the Tuareg rebels")])
q("name", "Which country borders Mali where the rebel attack took place?", [["Algeria"]],
  [(A1, "the attack on Mali’s border with Algeria")])
q("single_fact", "How did Ukraine describe Mali's decision to sever diplomatic ties?", [["short-sighted and hasty"]],
  [(A1, "a decision which Ukraine described as “short-sighted and hasty”")])
q("changed_over_time", "When did Zelensky set out his aim to build relations with Africa?", [["December 2023"]],
  [(A1, "an aim which he set out in December 2023 for the year ahead")])
q("single_fact", "What did Kuleba and his Zambian counterpart sign?", [["memorandum of understanding"]],
  [(A1, "signed a “memorandum of understanding”")])
q("single_fact", "What has happened to Russian supply lines around Pokrovsk?", [["degraded"]],
  [(A2, "have also been severely degraded by enemy drone attacks")])
q("single_fact", "How do Ukrainian officials see the occupied land in Kursk?", [["bargaining chip"]],
  [(A2, "Ukrainian officials see the occupied land in Kursk as a key bargaining chip")])
q("single_fact", "What did Kremlin officials intend to inflict on Ukrainian forces?", [["maximum damage"]],
  [(A2, "to ’inflict maximum damage’ to Ukrainian forces on the ground")])
q("name", "Which town is Russia targeting to cut off a supply route to Ukrainian forces?", [["Suvca"]],
  [(A4, "Russia is targeting the town of Suvca on the border")])
q("number", "How many people were injured over the past day according to regional authorities?", [["25"]],
  [(A1, "At least three people had been reported dead and 25 injured over the past day")])
q("number", "How many more people were killed following shelling in the Donetsk region at lunchtime?",
  [["four", "4"]], [(A1, "four more people were reported killed following shelling in the Donetsk region")])
q("number", "Across how many fronts were the 136 combat clashes recorded?", [["10"]],
  [(A1, "At least 136 combat clashes were recorded across 10 fronts")])
q("number", "How many residents did the Russian Emergencies Ministry say were evacuated near Sudzha?", [["300"]],
  [(A3, "over 300 residents have been evacuated from conflict zones near Sudzha")])
q("changed_over_time", "Since when has Ukraine's counteroffensive been launched in multiple directions?",
  [["June 2023"]], [(A0, "launched in multiple directions since June 2023")])
q("name", "Which Russian regions have seen increasing attacks besides Kursk?", [["Belgorod"], ["Bryansk"]],
  [(A0, "Russian regions like Belgorod, Bryansk, and Kursk have seen increasing attacks")])
q("single_fact", "How has the Kremlin responded to the incursions in border regions?", [["re:reinforcing its defen"]],
  [(A0, "The Kremlin has responded by reinforcing its defences in border regions")])
q("name", "Who instructed the Cabinet to coordinate assistance to the Kursk region?", [["Putin"]],
  [(A1, "Putin met with his top defense and security officials on Wednesday and instructed the Cabinet")])
q("single_fact", "What did the Defence Ministry's statement say about Russian control of the border?",
  [["full control"]], [(A0, "Russian forces remained in full control of the border")])
q("number", "How many Ukrainian brigades or officials commented on the operation?", answerable=False)
q("name", "Which Malian soldiers' deaths were linked to the rebel attack?", answerable=False)
q("single_fact", "What did Russia release images claiming to show?", [["re:missiles striking"]],
  [(A1, "Russia released images claiming to show Russian missiles striking Ukrainian military vehicles")])
q("name", "Who is the Ukrainian foreign minister touring Africa?", [["Kuleba"]],
  [(A1, "Foreign minister Dmytro Kuleba has nevertheless been on a tour in Africa")])


if __name__ == "__main__":
    out = Path(__file__).with_name("questions.jsonl")
    out.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in Q), encoding="utf-8")
    print(f"wrote {len(Q)} questions to {out}")
