"""Labelled data for the safety classifier: two real public sets and a synthetic generator.

Real data (read-only loaders, no network):

* ``load_sms_spam`` — the UCI SMS Spam Collection (5,574 messages, 747 spam), which trains
  and benchmarks the ``spam_scam`` head.
* ``load_instagram_fake`` — a small Kaggle table of fake / genuine Instagram accounts
  (576 train / 120 test rows), which proves the ``fake_profile`` head learns from real data.

Synthetic data (**made up, not real user messages**): no public corpus of dating-app
harassment or explicit messages ships with matchwise, so ``generate_safety_corpus`` writes
one from hand-made templates with slot fillers and realistic noise — typos, casing, emoji,
leetspeak, censored swear words, letter elongation — plus *benign texts that share words
with abusive ones* ("that concert was sick", "I'd kill for a coffee") and benign texts that
carry spam-like signals (a phone number, a portfolio link, "I work in crypto"), so that
neither a word list nor a link detector alone can solve it. Every row records its
``template_id``; splitting by template (``split_by_group``) tests unseen phrasings, not
memorised ones. Scores measured on this set are optimistic and only say the heads learn
the intended concepts; moderator labels from the store are what should train production.

``generate_synthetic_profiles`` likewise invents dating-app behaviour rows (account age,
photo count, like ratio, messages per hour, reports) following commonly reported fake
account patterns, so the fake-profile head has seen those columns before real moderator
labels exist. Both generators are deterministic for a given ``seed``.

The vocabulary is deliberately limited to common profanity and generic insults; no slurs
against protected groups are generated.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from matchwise.errors import ArtifactError, InvalidInput

TEXT_LABELS = ("inappropriate", "spam_scam", "harassment")

# --- real data -----------------------------------------------------------------------------

SMS_DIR = "sms-spam-collection"
SMS_FILE = "SMSSpamCollection"
INSTAGRAM_DIR = "instagram-fake-accounts"


def default_data_dir() -> Path:
    """Where the shared public data sets live: ``MATCHWISE_SHARED_DATA`` or ``../shared/data``."""
    env = os.environ.get("MATCHWISE_SHARED_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    for candidate in (repo / "shared" / "data", repo.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return repo.parent / "shared" / "data"


def load_sms_spam(path: str | Path | None = None) -> pd.DataFrame:
    """The SMS Spam Collection as a frame ``text``, ``spam_scam`` (1 = spam, 0 = ham)."""
    file = Path(path) if path is not None else default_data_dir() / SMS_DIR / SMS_FILE
    if file.is_dir():
        file = file / SMS_FILE
    if not file.is_file():
        raise ArtifactError(f"SMS Spam Collection not found at {file}")
    frame = pd.read_csv(
        file,
        sep="\t",
        header=None,
        names=["label", "text"],
        quoting=3,
        dtype=str,
        encoding="utf-8",
        keep_default_na=False,
    )
    if not set(frame["label"]) <= {"ham", "spam"}:
        raise ArtifactError(f"{file} has labels other than ham/spam")
    return pd.DataFrame(
        {"text": frame["text"], "spam_scam": (frame["label"] == "spam").astype(np.int8)}
    )


def load_instagram_fake(folder: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Instagram fake-account table as ``(train, test)`` frames with its own columns."""
    base = Path(folder) if folder is not None else default_data_dir() / INSTAGRAM_DIR
    frames = []
    for name in ("train.csv", "test.csv"):
        file = base / name
        if not file.is_file():
            raise ArtifactError(f"Instagram fake-account data not found at {file}")
        frame = pd.read_csv(file)
        if "fake" not in frame.columns:
            raise ArtifactError(f"{file} has no 'fake' column")
        frames.append(frame)
    return frames[0], frames[1]


# --- synthetic text corpus -----------------------------------------------------------------

_SLOTS: dict[str, list[str]] = {
    "name": ["Sam", "Alex", "Jordan", "Maria", "Chris", "Priya", "Tom", "Lena", "Mo", "Kim"],
    "place": [
        "the park",
        "that new bar",
        "the farmers market",
        "the museum",
        "the gym",
        "the coffee shop on 5th",
        "the beach",
        "the bookstore",
        "the climbing wall",
    ],
    "food": ["ramen", "tacos", "sushi", "pizza", "dumplings", "pho", "curry", "bagels"],
    "activity": [
        "hiking",
        "bouldering",
        "karaoke",
        "trivia night",
        "salsa",
        "running",
        "board games",
        "pottery",
        "cooking",
        "yoga",
        "camping",
        "photography",
    ],
    "show": ["the new season", "that documentary", "the finale", "the last episode"],
    "day": ["Saturday", "Sunday", "Friday", "tomorrow", "next week", "tonight", "Thursday"],
    "insult": [
        "loser",
        "idiot",
        "freak",
        "creep",
        "moron",
        "clown",
        "waste of space",
        "joke",
        "pathetic little man",
        "nobody",
        "psycho",
    ],
    "ugly": ["ugly", "fat", "disgusting", "gross", "hideous", "worthless", "pathetic", "stupid"],
    "swear": ["fuck", "fucking", "shit", "damn fucking"],
    "bitch": ["bitch", "slut", "whore", "asshole", "dickhead", "bastard"],
    "body": ["tits", "ass", "body", "boobs", "legs"],
    "sexact": ["fuck", "bang", "smash", "hook up with", "get naked with"],
    "app": ["WhatsApp", "Telegram", "Kik", "Snapchat", "Signal", "Google Chat"],
    "coin": ["bitcoin", "BTC", "ETH", "USDT", "crypto", "forex", "gold futures"],
    "amount": ["$500", "$200", "£300", "$1,000", "$3000", "€250", "$150", "$50"],
    "gift": ["Steam", "iTunes", "Google Play", "Amazon", "Apple", "Sephora", "Visa"],
    "handle": ["@jenny_love22", "@sweet_amy", "@crypto_mike", "@luna.x", "@kate_4u"],
    "url": [
        "www.verify-date.com",
        "http://bit.ly/3xK9aQ",
        "https://hotcams-live.net/me",
        "datesafe-check.org",
        "www.cryptoprofit-x.io",
        "https://tinyurl.com/yk7f2",
        "meet-real-girls.xyz",
        "www.premium-claim.site",
    ],
    "phone": [
        "+44 7700 900123",
        "07700 900456",
        "+1 (555) 013-2788",
        "555-0199-321",
        "+234 803 555 0101",
    ],
    "emoji_good": ["😊", "😂", "🙂", "😄", "❤️", "🔥", "🙌", "😅", "👍", "🌮", "☕"],
    "emoji_bad": ["😏", "🍆", "💦", "😈", "🖕", "😡", "🤬", "👅"],
    "emoji_money": ["💰", "💸", "🤑", "📈", "🎁", "✅"],
    "n": ["2", "3", "4", "5"],
    "pct": ["20%", "30%", "45%", "300%"],
}

# (template_id, category, text). Categories map to labels in _CATEGORY_LABELS.
_TEMPLATES: list[tuple[str, str, str]] = [
    # benign: ordinary dating-app conversation
    ("b01", "benign", "hey {name}! how was your weekend?"),
    ("b02", "benign", "I love {activity} too, have you been to {place}?"),
    ("b03", "benign", "would you like to grab {food} on {day}?"),
    ("b04", "benign", "haha that's so true. what do you do for work?"),
    ("b05", "benign", "your dog is adorable, what's his name?"),
    ("b06", "benign", "I just got back from {activity}, totally exhausted"),
    ("b07", "benign", "are you free {day}? there's a jazz thing at {place}"),
    ("b08", "benign", "good morning! hope your day goes well"),
    ("b09", "benign", "I've never tried {activity}, is it hard to start?"),
    ("b10", "benign", "sorry for the late reply, work was crazy busy"),
    ("b11", "benign", "what's the best {food} place you know?"),
    ("b12", "benign", "it was really nice meeting you, let's do it again"),
    ("b13", "benign", "I'm more of a cat person but I can be converted"),
    ("b14", "benign", "did you watch {show}? no spoilers please"),
    ("b15", "benign", "I think we'd get along, we both like {activity}"),
    ("b16", "benign", "I'm not feeling a connection, but I wish you all the best"),
    ("b17", "benign", "thanks for the chat, I'm heading to bed. talk tomorrow?"),
    ("b18", "benign", "my sister dragged me to {activity} and now I'm hooked"),
    ("b19", "benign", "I moved here last year, still exploring the city"),
    ("b20", "benign", "do you prefer mountains or the beach?"),
    ("b21", "benign", "I'll be a bit late, running 10 minutes behind, sorry!"),
    ("b22", "benign", "that photo at {place} is beautiful, did you take it?"),
    ("b23", "benign", "I'm a teacher, I love my kids but they're exhausting"),
    ("b24", "benign", "want to try the {food} truck near {place}?"),
    ("b25", "benign", "happy {day}! any plans?"),
    ("b26", "benign", "I had a great time last night, thank you"),
    ("b27", "benign", "no worries at all, another time then"),
    ("b28", "benign", "what music are you into lately?"),
    ("b29", "benign", "what's your go-to karaoke song?"),
    ("b30", "benign", "I make a mean lasagna, just saying"),
    ("b31", "benign", "my friends say I'm too competitive at {activity}"),
    ("b32", "benign", "any book recommendations? just finished a great thriller"),
    ("b33", "benign", "I'm heading to {place}, want to join?"),
    # benign with words abusive texts also use (hard negatives)
    ("t01", "benign", "that concert was sick, the drummer killed it"),
    ("t02", "benign", "I'd kill for a coffee right now"),
    ("t03", "benign", "this heat is killing me, how do you survive summer here"),
    ("t04", "benign", "I'm dying to try that {food} place everyone talks about"),
    ("t05", "benign", "my ex was a nightmare haha, but that's a story for a date"),
    ("t06", "benign", "you absolutely killed it at {activity} last week"),
    ("t07", "benign", "I'm a beast at mini golf, fair warning"),
    ("t08", "benign", "my cat is a little monster, she destroyed my couch"),
    ("t09", "benign", "I totally bombed my presentation today, ugh"),
    ("t10", "benign", "that movie was so bad it was good"),
    ("t11", "benign", "damn, that view from {place} is insane"),
    ("t12", "benign", "I hate mondays, send help"),
    ("t13", "benign", "stupid autocorrect, I meant duck lol"),
    ("t14", "benign", "hot take: pineapple belongs on pizza, fight me"),
    ("t15", "benign", "I'm a nurse, so I see blood and worse every day"),
    ("t16", "benign", "you look great in that hat"),
    ("t17", "benign", "I'm obsessed with {food}, it's a problem"),
    ("t18", "benign", "the hike was brutal but so worth it"),
    ("t19", "benign", "I feel like an idiot, I left my keys at {place} again"),
    ("t20", "benign", "we got crushed at trivia, we're such losers lol"),
    ("t21", "benign", "this weather sucks, movie night instead?"),
    ("t22", "benign", "I could eat my weight in {food}, no shame"),
    ("t23", "benign", "I'm not a creep I promise, just bad at opening lines haha"),
    ("t24", "benign", "let's shoot some pool at {place}"),
    ("t25", "benign", "that's a hell of a story"),
    ("t26", "benign", "I'm crazy about {activity}, been doing it for years"),
    ("t27", "benign", "the spicy wings at {place} nearly killed me haha"),
    ("t28", "benign", "sorry, I'm a disaster at texting back, not ignoring you!"),
    ("t29", "benign", "I'm a freak about clean dishes, fair warning"),
    ("t30", "benign", "that was a savage burn, I respect it"),
    ("t31", "benign", "I'm outside the cafe, grabbed us a table by the window"),
    ("t32", "benign", "my gym buddy kicked my ass today, legs are dead"),
    ("t33", "benign", "you're too funny, my stomach hurts from laughing"),
    # benign with spam-like signals
    ("s01", "benign", "I work in crypto, it's mostly boring spreadsheets honestly"),
    ("s02", "benign", "I'm a software engineer at a bank, not as fancy as it sounds"),
    ("s03", "benign", "here's my number if you'd rather text, {phone}"),
    ("s04", "benign", "I won a prize at trivia night, a free pizza haha"),
    ("s05", "benign", "my photography site is {url} if you're curious"),
    ("s06", "benign", "I'm saving money for a trip to Japan next spring"),
    ("s07", "benign", "I can pay for drinks this time, you got the last round"),
    ("s08", "benign", "I don't really use Snapchat, is texting ok?"),
    ("s09", "benign", "I'm an accountant, tax season is brutal"),
    ("s10", "benign", "call me when you're out of the meeting, no rush"),
    ("s11", "benign", "I'm trading in my old car for a bike, wish me luck"),
    ("s12", "benign", "split the bill? I'll venmo you for the tickets"),
    ("s13", "benign", "just got paid, dinner is on me this weekend"),
    # inappropriate: unsolicited sexual content, vulgarity not aimed at the reader
    ("i01", "inappropriate", "send nudes {emoji_bad}"),
    ("i02", "inappropriate", "wanna see my dick? {emoji_bad}"),
    ("i03", "inappropriate", "dtf tonight? no strings, just want to {sexact} someone"),
    ("i04", "inappropriate", "what are you wearing right now? take it off {emoji_bad}"),
    ("i05", "inappropriate", "show me your {body} and I'll show you mine"),
    ("i06", "inappropriate", "I want to {sexact} you so bad"),
    ("i07", "inappropriate", "nice {body}, bet you're wild in bed"),
    ("i08", "inappropriate", "I'm so horny, come over and sit on my face"),
    ("i09", "inappropriate", "this {swear} app is full of shit, nobody replies"),
    ("i10", "inappropriate", "skip the small talk, your place or mine for sex?"),
    ("i11", "inappropriate", "I'll send you a pic of my cock if you send one of your {body}"),
    ("i12", "inappropriate", "my bio says it all, I'm only here to {sexact} {emoji_bad}"),
    ("i13", "inappropriate", "holy shit this {swear} weather, fuck everything"),
    ("i14", "inappropriate", "you up? I'm hard thinking about you"),
    ("i15", "inappropriate", "do you do anal? asking for a friend {emoji_bad}"),
    ("i16", "inappropriate", "let's skip dinner and go straight to fucking"),
    ("i17", "inappropriate", "how big do you like them? I'm 9 inches"),
    ("i18", "inappropriate", "wanna sext? send me something naughty"),
    ("i19", "inappropriate", "bend over and I'll {sexact} you till morning"),
    ("i20", "inappropriate", "fuck it, drinks and then fuck?"),
    ("i21", "inappropriate", "I just want to see you naked, that's it"),
    ("i22", "inappropriate", "send me a pic of you in the shower {emoji_bad}"),
    ("i23", "inappropriate", "I'm touching myself thinking about your pics"),
    ("i24", "inappropriate", "got any spicy pics? I'll trade {emoji_bad}"),
    ("i25", "inappropriate", "you seem like you'd be a freak in bed {emoji_bad}"),
    ("i26", "inappropriate", "shit, this {swear} day has been a disaster"),
    ("i27", "inappropriate", "let's have a threesome with my girlfriend"),
    ("i28", "inappropriate", "I want to lick every inch of your body"),
    # harassment: directed insults, threats, stalking, intimidation (no profanity)
    ("h01", "harassment", "you're so {ugly}, no wonder you're single"),
    ("h02", "harassment", "nobody will ever love you, you {insult}"),
    ("h03", "harassment", "I know where you live. see you soon"),
    ("h04", "harassment", "why are you ignoring me?? answer me right now"),
    ("h05", "harassment", "you'll regret rejecting me, watch your back"),
    ("h06", "harassment", "I saw you at {place} yesterday with that guy. who is he?"),
    ("h07", "harassment", "kill yourself, the world would be better without you"),
    ("h08", "harassment", "I'll find you and make you pay for ghosting me"),
    ("h09", "harassment", "you're a {ugly} {insult}, delete your profile"),
    ("h10", "harassment", "I'm going to send your photos to everyone you know"),
    ("h11", "harassment", "stop pretending you're pretty, you look like a pig"),
    ("h12", "harassment", "you think you're too good for me? you're nothing"),
    ("h13", "harassment", "reply or I'll keep making new accounts until you do"),
    ("h14", "harassment", "I hope something bad happens to you"),
    ("h15", "harassment", "you're {ugly} and your personality is worse, {insult}"),
    ("h16", "harassment", "I'll ruin your life, I know where you work"),
    ("h17", "harassment", "go back to the kitchen where you belong"),
    ("h18", "harassment", "answer me. answer me. ANSWER ME"),
    ("h19", "harassment", "you're such a {insult}, I can't believe I matched you"),
    ("h20", "harassment", "I have screenshots of everything, I'll expose you"),
    ("h21", "harassment", "I'm outside your building, come down"),
    ("h22", "harassment", "you deserve to be alone forever, {insult}"),
    ("h23", "harassment", "hello?? I can see you're online. stop ignoring me"),
    ("h24", "harassment", "I've messaged you 20 times, you owe me a reply"),
    ("h25", "harassment", "I followed you home from {place}, nice house"),
    ("h26", "harassment", "I'm waiting outside your work, don't make me come in"),
    ("h27", "harassment", "if I can't have you nobody can"),
    ("h28", "harassment", "you'd be prettier if you lost 20 pounds, fatty"),
    ("h29", "harassment", "nobody asked for your opinion, you're a {ugly} {insult}"),
    ("h30", "harassment", "I'll make sure everyone knows what kind of person you are"),
    ("h31", "harassment", "you better answer or you'll be sorry"),
    ("h32", "harassment", "I found your instagram and your sister's too. cute family"),
    ("h33", "harassment", "women like you are the reason men hate dating"),
    ("h34", "harassment", "you're too {ugly} to be this picky, {insult}"),
    ("h35", "harassment", "I'll keep texting until you reply. I don't care if you block me"),
    ("h36", "harassment", "you'll pay for leading me on"),
    # abusive: harassment that is also vulgar (both labels)
    ("a01", "abusive", "{swear} you, you {ugly} {bitch}"),
    ("a02", "abusive", "shut up {bitch}, nobody asked you"),
    ("a03", "abusive", "you're a worthless piece of shit"),
    ("a04", "abusive", "go fuck yourself, {insult}"),
    ("a05", "abusive", "reply to me you stuck up {bitch}"),
    ("a06", "abusive", "you {ugly} {bitch}, I'd never {sexact} you anyway"),
    ("a07", "abusive", "suck my dick, you {insult}"),
    ("a08", "abusive", "eat shit and die {emoji_bad}"),
    ("a09", "abusive", "you're just a {bitch} who ghosts people, fuck off"),
    ("a10", "abusive", "I'll fuck you up if I see you at {place}"),
    ("a11", "abusive", "typical {bitch}, {swear} waste of my time"),
    ("a12", "abusive", "you look like shit in every photo, {ugly} {bitch}"),
    # scams common on dating apps
    (
        "c01",
        "scam",
        "hi dear, I'm a {coin} trader, I can teach you to make {amount} a week {emoji_money}",
    ),
    ("c02", "scam", "I don't use this app much, text me on {app} {phone}"),
    ("c03", "scam", "add me on {app} {handle}, I'm more active there"),
    ("c04", "scam", "before we meet you need to verify you're real at {url}, it's free"),
    ("c05", "scam", "my cam show is live right now, join me at {url} {emoji_bad}"),
    ("c06", "scam", "I'm stuck at the airport, can you buy me a {gift} gift card for {amount}?"),
    ("c07", "scam", "sugar daddy here, {amount} weekly allowance, send me your cashapp"),
    ("c08", "scam", "my uncle works at Binance, guaranteed {pct} returns on {coin} {emoji_money}"),
    ("c09", "scam", "congrats! you've won a free premium membership, claim it at {url}"),
    ("c10", "scam", "can you lend me {amount} for my sick mother? I'll pay you back when we meet"),
    ("c11", "scam", "I'm deployed overseas and need {amount} for my leave papers, please help"),
    ("c12", "scam", "buy me {n} {gift} cards and send me the codes, I'll pay you back double"),
    ("c13", "scam", "invest with me in {coin}, I made {amount} yesterday. sign up {url}"),
    ("c14", "scam", "URGENT: your account will be suspended, confirm your details at {url}"),
    ("c15", "scam", "hey handsome, I'm new in town. check my private pics {url}"),
    ("c16", "scam", "I need a small favor, wire {amount} through Western Union and I'll explain"),
    (
        "c17",
        "scam",
        "I'm an engineer on an oil rig, my bank froze my account, can you help with {amount}",
    ),
    ("c18", "scam", "text me at {phone} for a good time, cash only {emoji_money}"),
    ("c19", "scam", "want to earn {amount} a day from home? message me on {app}"),
    ("c20", "scam", "FREE entry to win {amount}! reply YES or visit {url} now"),
    ("c21", "scam", "my name is Anna, I'm a financial analyst, let me show you my {coin} strategy"),
    ("c22", "scam", "this app is bugging, message me directly at {phone}"),
    ("c23", "scam", "I'm a model, my page is {url}, subscribe to see everything"),
    ("c24", "scam", "send {amount} via PayPal for my bus ticket and I'll come see you tonight"),
    ("c25", "scam", "I can double your money in 48 hours with {coin}, trust me {emoji_money}"),
    ("c26", "scam", "you won a {amount} {gift} voucher! reply with your email to claim"),
]

# category -> (inappropriate, spam_scam, harassment)
_CATEGORY_LABELS: dict[str, tuple[int, int, int]] = {
    "benign": (0, 0, 0),
    "inappropriate": (1, 0, 0),
    "harassment": (0, 0, 1),
    "abusive": (1, 0, 1),
    "scam": (0, 1, 0),
}

# share of each category in a generated corpus
_CATEGORY_WEIGHTS: dict[str, float] = {
    "benign": 0.46,
    "inappropriate": 0.15,
    "harassment": 0.15,
    "abusive": 0.09,
    "scam": 0.15,
}

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_PROFANE = re.compile(
    r"\b(fuck\w*|shit\w*|bitch|slut|whore|dick\w*|cock|ass\w*|sex\w*|nudes|horny|anal)\b",
    re.IGNORECASE,
)
_FILLERS = ["lol", "haha", "tbh", "ngl", "lmao", "omg", "hmm", "ok"]


def _fill(template: str, rng: random.Random) -> str:
    def slot(match: re.Match[str]) -> str:
        return rng.choice(_SLOTS[match.group(1)])

    return re.sub(r"\{(\w+)\}", slot, template)


def _typo(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 2)):
        if len(chars) < 4:
            break
        i = rng.randrange(1, len(chars) - 1)
        op = rng.random()
        if op < 0.4:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op < 0.7:
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


def _leet(text: str, rng: random.Random, abusive: bool) -> str:
    if abusive and rng.random() < 0.6:  # obfuscate only the swear words, as evaders do
        return _PROFANE.sub(lambda m: m.group(0).lower().translate(_LEET), text)
    return text.lower().translate(_LEET)


def _censor(text: str, rng: random.Random) -> str:
    def star(match: re.Match[str]) -> str:
        word = match.group(0)
        if len(word) <= 2:
            return word
        return word[0] + "*" * (len(word) - 2) + word[-1]

    return _PROFANE.sub(star, text)


def _space_out(text: str, rng: random.Random) -> str:
    return _PROFANE.sub(lambda m: " ".join(m.group(0)), text, count=1)


def _elongate(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    i = rng.randrange(len(words))
    word = words[i]
    vowels = [j for j, c in enumerate(word) if c.lower() in "aeiouy"]
    if vowels:
        j = vowels[-1]
        words[i] = word[: j + 1] + word[j] * rng.randint(2, 4) + word[j + 1 :]
    return " ".join(words)


def _noisy(text: str, category: str, rng: random.Random) -> str:
    """Apply the kinds of noise real chat messages carry, more often to abusive ones."""
    abusive = category in ("inappropriate", "abusive", "harassment")
    if abusive and rng.random() < 0.15:
        text = _censor(text, rng)
    elif abusive and rng.random() < 0.05:
        text = _space_out(text, rng)
    if rng.random() < (0.15 if abusive else 0.04):
        text = _leet(text, rng, abusive)
    if rng.random() < 0.25:
        text = _typo(text, rng)
    if rng.random() < 0.12:
        text = _elongate(text, rng)
    r = rng.random()
    if r < 0.4:
        text = text.lower()
    elif r < 0.47 + (0.08 if category in ("harassment", "abusive", "scam") else 0.0):
        text = text.upper()
    elif r < 0.8 and text:
        text = text[0].upper() + text[1:]
    r = rng.random()
    if r < 0.25:
        text = text.rstrip(".!?")
    elif r < 0.35:
        text = text.rstrip(".!?") + rng.choice(["!!!", "!!", "??", "?!", "..."])
    if rng.random() < 0.15:
        text = f"{text} {rng.choice(_FILLERS)}"
    if rng.random() < 0.3:
        pool = {
            "benign": "emoji_good",
            "scam": "emoji_money",
        }.get(category, "emoji_bad" if rng.random() < 0.7 else "emoji_good")
        emoji = rng.choice(_SLOTS[pool])
        text = f"{emoji} {text}" if rng.random() < 0.2 else f"{text} {emoji}"
    return text


def _history(
    text: str, category: str, rng: random.Random, pools: dict[str, list[str]]
) -> list[str]:
    """Other messages by the same sender: scammers paste one text to many matches,
    harassers repeat demands, ordinary users sometimes reuse an opener too."""
    size = rng.randint(2, 8)
    repeat_p = {"scam": 0.75, "harassment": 0.35, "abusive": 0.25}.get(category, 0.15)
    out = []
    for _ in range(size):
        if rng.random() < repeat_p:
            out.append(text if rng.random() < 0.7 else _typo(text, rng))
        else:
            out.append(rng.choice(pools[category]))
    return out


def generate_safety_corpus(n: int = 3000, seed: int = 0, history_rate: float = 0.3) -> pd.DataFrame:
    """A synthetic labelled set of chat messages (see module docstring: it is made up).

    Returns columns ``text``, ``inappropriate``, ``spam_scam``, ``harassment`` (0/1),
    ``category``, ``template_id`` and ``history`` (a list of the sender's other messages,
    empty for ``1 - history_rate`` of rows). Same ``n`` and ``seed`` give the same frame.
    """
    if n <= 0:
        raise InvalidInput("n must be positive")
    rng = random.Random(seed)
    by_category: dict[str, list[tuple[str, str]]] = {}
    for template_id, category, text in _TEMPLATES:
        by_category.setdefault(category, []).append((template_id, text))
    categories = list(_CATEGORY_WEIGHTS)
    weights = [_CATEGORY_WEIGHTS[c] for c in categories]
    raw_pools = {
        c: [_fill(t, random.Random(seed + 7919 + i)) for i, (_, t) in enumerate(items)]
        for c, items in by_category.items()
    }
    rows = []
    for _ in range(n):
        category = rng.choices(categories, weights)[0]
        template_id, template = rng.choice(by_category[category])
        text = _noisy(_fill(template, rng), category, rng)
        text = re.sub(r"\s+", " ", text).strip() or "hi"
        history = _history(text, category, rng, raw_pools) if rng.random() < history_rate else []
        inappropriate, spam, harassment = _CATEGORY_LABELS[category]
        rows.append(
            {
                "text": text,
                "inappropriate": inappropriate,
                "spam_scam": spam,
                "harassment": harassment,
                "category": category,
                "template_id": template_id,
                "history": history,
            }
        )
    return pd.DataFrame(rows)


def split_by_group(
    groups: pd.Series | np.ndarray,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    strata: pd.Series | np.ndarray | None = None,
) -> np.ndarray:
    """Assign ``"train"``/``"val"``/``"test"`` per row so that no group spans two splits.

    With ``strata`` (one value per row, constant within a group, e.g. the category) the
    groups of each stratum are split separately, so every split sees every stratum.
    """
    groups = np.asarray(groups)
    strata_arr = np.asarray(strata) if strata is not None else np.zeros(len(groups), dtype=int)
    rng = np.random.default_rng(seed)
    out = np.empty(len(groups), dtype=object)
    for stratum in pd.unique(strata_arr):
        in_stratum = strata_arr == stratum
        unique = np.array(sorted(pd.unique(groups[in_stratum])))
        rng.shuffle(unique)
        n = len(unique)
        n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
        n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
        assign = {g: "test" for g in unique[:n_test]}
        assign.update({g: "val" for g in unique[n_test : n_test + n_val]})
        for g in unique[n_test + n_val :]:
            assign[g] = "train"
        out[in_stratum] = [assign[g] for g in groups[in_stratum]]
    return out.astype(str)


# --- synthetic dating-app profiles ---------------------------------------------------------


def generate_synthetic_profiles(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Invented dating-app accounts with a ``fake_profile`` label (half fake).

    Fakes skew to new accounts, few photos, short or templated bios, digits in usernames,
    swiping right on nearly everyone, bursts of messages and reports from other users;
    genuine accounts overlap on every feature (new genuine users, bots that age), so the
    head must combine signals. Made up: scores on it only check the plumbing.
    """
    if n <= 0:
        raise InvalidInput("n must be positive")
    rng = np.random.default_rng(seed)
    fake = rng.random(n) < 0.5
    m = int(fake.sum())
    g = n - m

    def mix(fake_draw: Callable[[int], np.ndarray], real_draw: Callable[[int], np.ndarray]):
        out = np.empty(n, dtype=float)
        out[fake] = fake_draw(m)
        out[~fake] = real_draw(g)
        return out

    frame = pd.DataFrame(
        {
            "account_age_days": mix(
                lambda k: rng.exponential(6, k), lambda k: rng.exponential(180, k)
            ),
            "photo_count": mix(
                lambda k: rng.choice([0, 1, 1, 2, 3, 6], k), lambda k: rng.integers(1, 10, k)
            ),
            "bio_length": mix(
                lambda k: np.where(rng.random(k) < 0.5, 0, rng.integers(5, 80, k)),
                lambda k: np.where(rng.random(k) < 0.15, 0, rng.integers(20, 500, k)),
            ),
            "username_digit_ratio": mix(
                lambda k: np.where(rng.random(k) < 0.6, rng.uniform(0.2, 0.6, k), 0.0),
                lambda k: np.where(rng.random(k) < 0.2, rng.uniform(0.05, 0.3, k), 0.0),
            ),
            "like_ratio": mix(lambda k: rng.beta(9, 1.2, k), lambda k: rng.beta(2, 4, k)),
            "messages_per_hour": mix(
                lambda k: rng.gamma(2.0, 4.0, k), lambda k: rng.gamma(1.2, 0.8, k)
            ),
            "reports_received": mix(lambda k: rng.poisson(1.5, k), lambda k: rng.poisson(0.08, k)),
            "has_external_url": mix(
                lambda k: (rng.random(k) < 0.35).astype(float),
                lambda k: (rng.random(k) < 0.05).astype(float),
            ),
        }
    )
    frame["has_profile_photo"] = (frame["photo_count"] > 0).astype(float)
    frame["fake_profile"] = fake.astype(np.int8)
    return frame
