#!/usr/bin/env python3
"""gen_data.py - the deterministic data generator of minilora (SPEC section 5).

Writes the pretraining corpus and the irregular-verb fine-tune/eval splits as prompt/completion
JSONL, plus MANIFEST.json and README.md, into --out (default: data/ beside scripts/).

    python3 scripts/gen_data.py [--out DIR] [--seed N]

Standard library only (python3 >= 3.9). All randomness comes from the splitmix64 generator
below, forked per purpose from --seed, and nothing iterates over a set or a hash-ordered
container, so the output is byte for byte the same on every run and every Python version.

The task: a base model pretrained on many regular verbs (real and invented "wug" verbs, in all
five forms) learns the English -ed rule with its spelling variants; 8 irregular verbs (and 24
"unseen" irregulars) appear there only in non-past forms, so the base over-regularizes them
("goed"); a LoRA adapter is then fine-tuned on their real past forms. A larger fine-tune set
(irreg_large*.jsonl: those 8 and 40 more irregulars, also pretrained in non-past forms only) is
for experiments where 8 verbs are too few to load the adapter's capacity.

Record format (keys in this order):
    {"prompt": "walk: yesterday he ", "completion": "walked", "verb": "walk", "form": "past"}
prompt = "<lemma>: <context> "; forms: past, pp, 3sg, base, ing; past/pp records of irregular
verbs in the fine-tune/eval files also carry "distractor" (the over-regularized form, e.g.
"goed"). replay.jsonl (mixed into fine-tuning) also holds the irregulars' non-past forms, and
irreg_nonpast.jsonl measures whether those survive fine-tuning.

Contexts are frames (a sentence shape with a cue phrase: "yesterday <subj> ", "<subj> has just ")
filled with a subject (pronouns, noun phrases, names; the verb agrees). A seeded quarter of the
cues and a few whole shapes are held out of every training file; the *_new.jsonl tests use only
those held-out frames, so they measure the rule rather than memory of the frames.
"""
import argparse
import bisect
import hashlib
import math
import json
import os
import sys

GENERATOR = "scripts/gen_data.py"
DEFAULT_SEED = 1958  # Berko's wug test
CONTEXT = 32         # symbols, including the end token (SPEC section 2)
VOCAB = ["\n", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
        [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list(".,:;'!?-()")
FORMS = ("past", "pp", "3sg", "base", "ing")
NONPAST = ("3sg", "base", "ing")
PASTLIKE = ("past", "pp")
VOWELS = "aeiou"

# ----------------------------------------------------------------------------------------------
# PRNG: splitmix64 (Steele, Lea, Flood 2014), forked per purpose so that each file's draws are
# independent of the others'.
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        """Uniform integer in [0, n), by rejection (no modulo bias)."""
        assert n > 0
        limit = ((1 << 64) // n) * n
        while True:
            r = self.next_u64()
            if r < limit:
                return r % n

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def shuffle(self, lst):
        for i in range(len(lst) - 1, 0, -1):
            j = self.below(i + 1)
            lst[i], lst[j] = lst[j], lst[i]

    def sample(self, seq, k):
        """k distinct elements of seq, in random order (partial Fisher-Yates)."""
        pool = list(seq)
        assert 0 <= k <= len(pool), (k, len(pool))
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def fork(seed, label):
    digest = hashlib.sha256(("%d:%s" % (seed, label)).encode("ascii")).digest()
    return SplitMix64(int.from_bytes(digest[:8], "little"))


# ----------------------------------------------------------------------------------------------
# The regular rule.

def is_vowel_at(w, i):
    ch = w[i]
    return ch in VOWELS or (ch == "y" and i > 0 and w[i - 1] not in VOWELS)


def syllables(w):
    """Vowel-group count with a silent final e (good enough for the words used here)."""
    groups, prev = 0, False
    for i in range(len(w)):
        v = is_vowel_at(w, i)
        if v and not prev:
            groups += 1
        prev = v
    if (groups > 1 and w.endswith("e") and w[-2] not in VOWELS + "y"
            and not (w.endswith("le") and len(w) > 3 and w[-3] not in VOWELS)):
        groups -= 1
    return groups


def ends_cvc(w):
    """Ends in consonant + single vowel + consonant other than w, x, y (stop, plan, admit)."""
    return (len(w) >= 3 and w[-1] not in VOWELS + "wxy" and w[-2] in VOWELS
            and w[-3] not in VOWELS)


def auto_double(lemma):
    """The doubling rule as it applies to monosyllables: stop -> stopped, but look -> looked."""
    return syllables(lemma) == 1 and ends_cvc(lemma)


def regular_forms(lemma, double):
    """(past, 3sg, ing) of a regular verb; the past participle equals the past."""
    w = lemma
    if w.endswith("e"):
        past, s3 = w + "d", w + "s"
        if w.endswith("ie"):
            ing = w[:-2] + "ying"                       # lie -> lying
        elif w.endswith(("ee", "ye", "oe")):
            ing = w + "ing"                             # agree -> agreeing
        else:
            ing = w[:-1] + "ing"                        # make -> making
    elif w.endswith("y") and len(w) > 1 and w[-2] not in VOWELS:
        past, s3, ing = w[:-1] + "ied", w[:-1] + "ies", w + "ing"   # study -> studied
    else:
        stem = w + w[-1] if double else w
        past, ing = stem + "ed", stem + "ing"
        if w.endswith(("s", "sh", "ch", "x", "z")) or (w.endswith("o") and w[-2] not in VOWELS):
            s3 = w + "es"
        else:
            s3 = w + "s"
    return past, s3, ing


def regularize(lemma):
    """The over-regularized past a learner of the rule produces (go -> goed, run -> runned)."""
    return regular_forms(lemma, auto_double(lemma))[0]


def spelling_class(lemma, past):
    if lemma.endswith("e"):
        return "e"
    if lemma.endswith("y"):
        return "vy" if lemma[-2] in VOWELS else "cy"
    if past == lemma + lemma[-1] + "ed":
        return "double"
    if ends_cvc(lemma) and syllables(lemma) > 1:
        return "nodouble"
    return "plain"


CLASS_NOTES = {
    "plain": "+ed (walk -> walked)",
    "e": "silent e: +d (like -> liked, making)",
    "cy": "consonant+y -> ied (study -> studied, studies)",
    "vy": "vowel+y: +ed (play -> played)",
    "double": "final consonant doubled (stop -> stopped, prefer -> preferred)",
    "nodouble": "polysyllable not doubled (visit -> visited, travel -> traveled)",
    "es": "3sg -es after s/sh/ch/x/z (fix -> fixes; real verbs also counted above)",
}

# ----------------------------------------------------------------------------------------------
# Verbs.

# 8 irregular fine-tune verbs: lemma past pp 3sg ing (be: past is was|were by subject).
FINETUNE_IRREGULARS = """
be was|were been is being
have had had has having
do did done does doing
go went gone goes going
come came come comes coming
see saw seen sees seeing
eat ate eaten eats eating
write wrote written writes writing
"""

# Irregular verbs never fine-tuned on (evaluation of transfer): lemma past pp 3sg ing.
UNSEEN_IRREGULARS = """
take took taken takes taking
give gave given gives giving
make made made makes making
know knew known knows knowing
think thought thought thinks thinking
find found found finds finding
tell told told tells telling
run ran run runs running
sing sang sung sings singing
drink drank drunk drinks drinking
speak spoke spoken speaks speaking
break broke broken breaks breaking
buy bought bought buys buying
bring brought brought brings bringing
leave left left leaves leaving
feel felt felt feels feeling
begin began begun begins beginning
swim swam swum swims swimming
fly flew flown flies flying
drive drove driven drives driving
sleep slept slept sleeps sleeping
teach taught taught teaches teaching
catch caught caught catches catching
sell sold sold sells selling
"""

# 40 more irregular verbs for the larger fine-tune set (irreg_large*.jsonl, together with the 8
# above): lemma past pp 3sg ing, American forms. Like the others they appear in pretraining only in
# non-past forms. Left out on purpose: verbs whose over-regularized form is itself standard or a
# word (shine/shined, hang/hanged, wake/waked, lead/leaded, pay/payed, put/putted, tear/teared),
# keep (keeps is a context word), read (homograph past), and verbs of the tables above.
LARGE_IRREGULARS = """
bite bit bitten bites biting
blow blew blown blows blowing
choose chose chosen chooses choosing
dig dug dug digs digging
draw drew drawn draws drawing
fall fell fallen falls falling
fight fought fought fights fighting
forget forgot forgotten forgets forgetting
forgive forgave forgiven forgives forgiving
freeze froze frozen freezes freezing
grow grew grown grows growing
hide hid hidden hides hiding
hit hit hit hits hitting
hold held held holds holding
hurt hurt hurt hurts hurting
lend lent lent lends lending
let let let lets letting
lose lost lost loses losing
meet met met meets meeting
ride rode ridden rides riding
rise rose risen rises rising
say said said says saying
send sent sent sends sending
shake shook shaken shakes shaking
shoot shot shot shoots shooting
shut shut shut shuts shutting
sink sank sunk sinks sinking
sit sat sat sits sitting
slide slid slid slides sliding
spend spent spent spends spending
stand stood stood stands standing
steal stole stolen steals stealing
stick stuck stuck sticks sticking
sting stung stung stings stinging
strike struck struck strikes striking
swing swung swung swings swinging
throw threw thrown throws throwing
wear wore worn wears wearing
weep wept wept weeps weeping
win won won wins winning
"""

# Distractors that the plain monosyllable rule does not give: begin and forget are stressed on the
# final syllable, so the rule (like prefer -> preferred) doubles; forgive (not monosyllabic) takes
# the silent-e rule.
DISTRACTOR_OVERRIDES = {"begin": "beginned", "forget": "forgetted", "forgive": "forgived"}

CONTROL_VERBS = ("work", "play", "walk", "talk", "listen", "watch", "study", "finish", "start",
                 "look", "want", "like")

# Real regular verbs, American spelling: lemma past 3sg ing. Stored explicitly, because doubling
# depends on stress (prefer -> preferred, offer -> offered); check_real_table() verifies every
# row against the rule (monosyllables: with the doubling decided by the rule itself).
# Verbs with a common irregular or double past (learn/learnt, show/shown, prove/proven, spell,
# dream, spill, fit, quit, ...) and verbs that share a form with an irregular (found, saw, lay,
# fell, ...) are left out on purpose.
REAL_REGULARS = """
work worked works working
walk walked walks walking
talk talked talks talking
look looked looks looking
want wanted wants wanting
start started starts starting
watch watched watches watching
finish finished finishes finishing
help helped helps helping
ask asked asks asking
jump jumped jumps jumping
kick kicked kicks kicking
pick picked picks picking
pack packed packs packing
push pushed pushes pushing
pull pulled pulls pulling
fill filled fills filling
call called calls calling
climb climbed climbs climbing
cook cooked cooks cooking
clean cleaned cleans cleaning
count counted counts counting
crash crashed crashes crashing
cross crossed crosses crossing
dress dressed dresses dressing
end ended ends ending
fix fixed fixes fixing
fold folded folds folding
guess guessed guesses guessing
hunt hunted hunts hunting
laugh laughed laughs laughing
lift lifted lifts lifting
mark marked marks marking
melt melted melts melting
miss missed misses missing
need needed needs needing
paint painted paints painting
park parked parks parking
pass passed passes passing
point pointed points pointing
print printed prints printing
rest rested rests resting
return returned returns returning
rush rushed rushes rushing
shout shouted shouts shouting
sign signed signs signing
search searched searches searching
touch touched touches touching
train trained trains training
turn turned turns turning
thank thanked thanks thanking
wait waited waits waiting
wash washed washes washing
wish wished wishes wishing
yell yelled yells yelling
kiss kissed kisses kissing
knock knocked knocks knocking
land landed lands landing
lock locked locks locking
mix mixed mixes mixing
pour poured pours pouring
pump pumped pumps pumping
reach reached reaches reaching
remain remained remains remaining
repeat repeated repeats repeating
report reported reports reporting
pretend pretended pretends pretending
protect protected protects protecting
collect collected collects collecting
connect connected connects connecting
correct corrected corrects correcting
expect expected expects expecting
explain explained explains explaining
accept accepted accepts accepting
add added adds adding
attack attacked attacks attacking
attend attended attends attending
avoid avoided avoids avoiding
boil boiled boils boiling
brush brushed brushes brushing
check checked checks checking
cheer cheered cheers cheering
claim claimed claims claiming
coach coached coaches coaching
comb combed combs combing
complain complained complains complaining
crawl crawled crawls crawling
earn earned earns earning
fail failed fails failing
float floated floats floating
form formed forms forming
heat heated heats heating
hook hooked hooks hooking
insist insisted insists insisting
invent invented invents inventing
join joined joins joining
lack lacked lacks lacking
load loaded loads loading
mail mailed mails mailing
mend mended mends mending
peel peeled peels peeling
plant planted plants planting
punch punched punches punching
rent rented rents renting
roll rolled rolls rolling
rock rocked rocks rocking
sail sailed sails sailing
scream screamed screams screaming
seem seemed seems seeming
sort sorted sorts sorting
stack stacked stacks stacking
stamp stamped stamps stamping
steer steered steers steering
stretch stretched stretches stretching
suggest suggested suggests suggesting
test tested tests testing
toss tossed tosses tossing
track tracked tracks tracking
trust trusted trusts trusting
twist twisted twists twisting
vanish vanished vanishes vanishing
warn warned warns warning
yawn yawned yawns yawning
borrow borrowed borrows borrowing
follow followed follows following
allow allowed allows allowing
glow glowed glows glowing
view viewed views viewing
chew chewed chews chewing
relax relaxed relaxes relaxing
box boxed boxes boxing
greet greeted greets greeting
obtain obtained obtains obtaining
bark barked barks barking
bloom bloomed blooms blooming
wink winked winks winking
march marched marches marching
match matched matches matching
fetch fetched fetches fetching
splash splashed splashes splashing
polish polished polishes polishing
publish published publishes publishing
perform performed performs performing
request requested requests requesting
depend depended depends depending
discuss discussed discusses discussing
rain rained rains raining
snow snowed snows snowing
weigh weighed weighs weighing
own owned owns owning
act acted acts acting
film filmed films filming
bump bumped bumps bumping
dust dusted dusts dusting
post posted posts posting
list listed lists listing
fish fished fishes fishing
stream streamed streams streaming
shift shifted shifts shifting
drift drifted drifts drifting
conquer conquered conquers conquering
like liked likes liking
move moved moves moving
dance danced dances dancing
hope hoped hopes hoping
smile smiled smiles smiling
close closed closes closing
live lived lives living
love loved loves loving
use used uses using
change changed changes changing
arrive arrived arrives arriving
believe believed believes believing
agree agreed agrees agreeing
free freed frees freeing
decide decided decides deciding
share shared shares sharing
save saved saves saving
bake baked bakes baking
care cared cares caring
chase chased chases chasing
compare compared compares comparing
create created creates creating
dare dared dares daring
date dated dates dating
describe described describes describing
escape escaped escapes escaping
excuse excused excuses excusing
fade faded fades fading
force forced forces forcing
hate hated hates hating
ignore ignored ignores ignoring
imagine imagined imagines imagining
invite invited invites inviting
joke joked jokes joking
judge judged judges judging
manage managed manages managing
measure measured measures measuring
notice noticed notices noticing
owe owed owes owing
place placed places placing
please pleased pleases pleasing
prepare prepared prepares preparing
produce produced produces producing
promise promised promises promising
race raced races racing
raise raised raises raising
receive received receives receiving
refuse refused refuses refusing
remove removed removes removing
replace replaced replaces replacing
rescue rescued rescues rescuing
score scored scores scoring
serve served serves serving
shave shaved shaves shaving
skate skated skates skating
smoke smoked smokes smoking
sneeze sneezed sneezes sneezing
solve solved solves solving
stare stared stares staring
store stored stores storing
suppose supposed supposes supposing
surprise surprised surprises surprising
taste tasted tastes tasting
tease teased teases teasing
trace traced traces tracing
trade traded trades trading
tie tied ties tying
lie lied lies lying
type typed types typing
vote voted votes voting
wipe wiped wipes wiping
wave waved waves waving
whistle whistled whistles whistling
breathe breathed breathes breathing
continue continued continues continuing
argue argued argues arguing
pause paused pauses pausing
cause caused causes causing
guide guided guides guiding
juggle juggled juggles juggling
giggle giggled giggles giggling
tickle tickled tickles tickling
struggle struggled struggles struggling
puzzle puzzled puzzles puzzling
bounce bounced bounces bouncing
behave behaved behaves behaving
combine combined combines combining
complete completed completes completing
confuse confused confuses confusing
damage damaged damages damaging
declare declared declares declaring
delete deleted deletes deleting
divide divided divides dividing
explore explored explores exploring
handle handled handles handling
include included includes including
increase increased increases increasing
locate located locates locating
nurse nursed nurses nursing
observe observed observes observing
practice practiced practices practicing
provide provided provides providing
recycle recycled recycles recycling
reduce reduced reduces reducing
release released releases releasing
require required requires requiring
retire retired retires retiring
settle settled settles settling
shape shaped shapes shaping
squeeze squeezed squeezes squeezing
tackle tackled tackles tackling
trouble troubled troubles troubling
unite united unites uniting
value valued values valuing
wrestle wrestled wrestles wrestling
hike hiked hikes hiking
glance glanced glances glancing
rattle rattled rattles rattling
tremble trembled trembles trembling
pile piled piles piling
rake raked rakes raking
file filed files filing
grade graded grades grading
blame blamed blames blaming
tape taped tapes taping
name named names naming
phone phoned phones phoning
study studied studies studying
carry carried carries carrying
try tried tries trying
cry cried cries crying
worry worried worries worrying
hurry hurried hurries hurrying
marry married marries marrying
copy copied copies copying
apply applied applies applying
reply replied replies replying
deny denied denies denying
dry dried dries drying
fry fried fries frying
spy spied spies spying
bury buried buries burying
envy envied envies envying
empty emptied empties emptying
tidy tidied tidies tidying
supply supplied supplies supplying
rely relied relies relying
vary varied varies varying
multiply multiplied multiplies multiplying
classify classified classifies classifying
identify identified identifies identifying
satisfy satisfied satisfies satisfying
justify justified justifies justifying
qualify qualified qualifies qualifying
occupy occupied occupies occupying
pity pitied pities pitying
ferry ferried ferries ferrying
defy defied defies defying
magnify magnified magnifies magnifying
notify notified notifies notifying
verify verified verifies verifying
play played plays playing
enjoy enjoyed enjoys enjoying
stay stayed stays staying
pray prayed prays praying
obey obeyed obeys obeying
delay delayed delays delaying
destroy destroyed destroys destroying
employ employed employs employing
annoy annoyed annoys annoying
spray sprayed sprays spraying
display displayed displays displaying
convey conveyed conveys conveying
betray betrayed betrays betraying
survey surveyed surveys surveying
portray portrayed portrays portraying
decay decayed decays decaying
sway swayed sways swaying
toy toyed toys toying
relay relayed relays relaying
journey journeyed journeys journeying
stop stopped stops stopping
plan planned plans planning
drop dropped drops dropping
shop shopped shops shopping
hop hopped hops hopping
hug hugged hugs hugging
rob robbed robs robbing
rub rubbed rubs rubbing
beg begged begs begging
nod nodded nods nodding
chat chatted chats chatting
grab grabbed grabs grabbing
tap tapped taps tapping
clap clapped claps clapping
skip skipped skips skipping
slip slipped slips slipping
trip tripped trips tripping
ship shipped ships shipping
step stepped steps stepping
grin grinned grins grinning
hum hummed hums humming
jog jogged jogs jogging
pat patted pats patting
pin pinned pins pinning
plug plugged plugs plugging
scan scanned scans scanning
ban banned bans banning
trim trimmed trims trimming
wrap wrapped wraps wrapping
zip zipped zips zipping
chop chopped chops chopping
drag dragged drags dragging
drum drummed drums drumming
dip dipped dips dipping
mop mopped mops mopping
nap napped naps napping
rip ripped rips ripping
sob sobbed sobs sobbing
stir stirred stirs stirring
tag tagged tags tagging
tip tipped tips tipping
wag wagged wags wagging
whip whipped whips whipping
jam jammed jams jamming
flip flipped flips flipping
snap snapped snaps snapping
prefer preferred prefers preferring
admit admitted admits admitting
occur occurred occurs occurring
refer referred refers referring
commit committed commits committing
control controlled controls controlling
permit permitted permits permitting
regret regretted regrets regretting
omit omitted omits omitting
submit submitted submits submitting
equip equipped equips equipping
patrol patrolled patrols patrolling
compel compelled compels compelling
expel expelled expels expelling
excel excelled excels excelling
listen listened listens listening
visit visited visits visiting
open opened opens opening
offer offered offers offering
happen happened happens happening
enter entered enters entering
answer answered answers answering
order ordered orders ordering
gather gathered gathers gathering
cover covered covers covering
wonder wondered wonders wondering
deliver delivered delivers delivering
suffer suffered suffers suffering
differ differed differs differing
edit edited edits editing
limit limited limits limiting
travel traveled travels traveling
cancel canceled cancels canceling
label labeled labels labeling
signal signaled signals signaling
model modeled models modeling
level leveled levels leveling
credit credited credits crediting
exhibit exhibited exhibits exhibiting
inherit inherited inherits inheriting
develop developed develops developing
gallop galloped gallops galloping
soften softened softens softening
fasten fastened fastens fastening
harden hardened hardens hardening
darken darkened darkens darkening
sharpen sharpened sharpens sharpening
threaten threatened threatens threatening
whisper whispered whispers whispering
shiver shivered shivers shivering
consider considered considers considering
remember remembered remembers remembering
discover discovered discovers discovering
recover recovered recovers recovering
murmur murmured murmurs murmuring
wander wandered wanders wandering
bother bothered bothers bothering
flatter flattered flatters flattering
mutter muttered mutters muttering
water watered waters watering
color colored colors coloring
honor honored honors honoring
labor labored labors laboring
favor favored favors favoring
audit audited audits auditing
benefit benefited benefits benefiting
orbit orbited orbits orbiting
"""

# How many of the real (non-control) regular verbs are held out of pretraining, per class.
HELDOUT_QUOTA = (("plain", 10), ("e", 9), ("cy", 6), ("vy", 4), ("double", 6), ("nodouble", 5))
HELDOUT_MAX_LEN = 17      # lemma + past letters: "satisfy: ages ago i satisfied" fits
HELDOUT_DOUBLE_POLY = 2   # of the 6 doubling verbs held out, this many are polysyllables

# ----------------------------------------------------------------------------------------------
# Nonce ("wug") verbs, after Berko (1958): built from onset/nucleus/coda inventories, one
# template list per spelling class, each template a weight and a sequence of parts.
ONSET1 = "b d f g h j k l m n p r s t v w z".split()
ONSET2 = "bl br cl cr dr fl fr gl gr pl pr sk sl sm sn sp st sw tr tw th sh ch".split()
ONSET3 = "scr spl spr str".split()
ONSETS = ONSET1 + ONSET2 + ONSET3
SHORT_V = list(VOWELS)
PRE_SYL = [c + v for c in "b d f g k l m n p r s t v z".split() for v in VOWELS]
E_V = list("aiou")
E_C = "b d f k l m n p t v z".split()
LE_END = "ckle ggle mble ndle ttle ddle zzle pple ffle mple ngle nkle".split()
CY_MID = ("b d f g k l m n p r t v z bb dd ff gg ll mm nn pp rr tt zz "
          "nd mp nt rt rd rk lk lp nk sk st lt").split()
VY_PRE = "be de re con dis em en im per pro".split()
VY_END = ["ay", "ey", "oy"]
DOUBLE_CODA = "b d g l m n p r t".split()
CLUSTER = "nd nt mp lp lt lk ft st sk rk rm rn rt rd nk ng ld ct pt lm ck".split()
DIGRAPH = "ee ea oa ai oo oi ou au".split()
DIGRAPH_CODA = "b d f k l m n p r t".split()
ES_CODA = "ss sh tch nch x zz".split()

NONCE_TEMPLATES = {
    "e": [(3, [ONSETS, E_V, E_C, ["e"]]), (1, [PRE_SYL, ONSETS, E_V, E_C, ["e"]]),
          (1, [ONSETS, SHORT_V, LE_END])],
    "cy": [(1, [ONSET2, ["y"]]), (4, [ONSETS, SHORT_V, CY_MID, ["y"]])],
    "vy": [(2, [ONSETS, VY_END]), (2, [VY_PRE, ONSETS, VY_END])],
    "double": [(1, [ONSETS, SHORT_V, DOUBLE_CODA])],
    "plain": [(5, [ONSETS, SHORT_V, CLUSTER]), (3, [ONSETS, DIGRAPH, DIGRAPH_CODA]),
              (2, [PRE_SYL, ONSETS, SHORT_V, CLUSTER])],
    "es": [(4, [ONSETS, SHORT_V, ES_CODA]), (1, [PRE_SYL, ONSET1, SHORT_V, ES_CODA])],
}
NONCE_QUOTA = (("e", 330), ("cy", 300), ("vy", 250), ("double", 360), ("plain", 460), ("es", 300))

# A nonce word is rejected when it, or one of its forms, contains one of these.
UNSAVORY = ("fuck shit cunt cock dick piss slut whor nig fag cum jiz twat wank rape porn sex "
            "anal anus spic kike coon dyke tit boob poop turd puss bitch homo nazi hitl kkk "
            "fart crap damn tard gay sperm semen spunk smeg pube gook chink muff arse butt"
            ).split()

# Real English words reachable from NONCE_TEMPLATES, so never nonce (with those of the tables
# above and the context words). Derived with `--dict-hits /usr/share/dict/words` (Debian
# wamerican 2020.12.07): every template word whose lemma or regular form is in the dictionary.
DICT_WORDS = """
babe baby back bad bade baffle bag baggy bail bait bake baking bal bald bale baling balk balky
balm ban band bandy bane bang bangle banish bank bant bar barack bard barent barest baring bark
barn barry bart basalt basest bash bashing basing bask basking bass bast bastard basting bat
batch bate bathing bating battle batty baud baum bay bead beak beam bean bear beat beck bed
bedeck bedrock beef been beep beer beet beg begone behave beheld behest behind behold bel belate
belay belize belly belong belove belt bely ben bench bend benny bent berate bereft bering berm
bern berry bert beside bespoke bess best besting bestride bestrode bet betake bethink bethune
betide betray betty bevy bewitch bib bid biddle biddy bide biding big biggle biggy bigote bike
biking bil bile bilk billy bin bind bing bipe biplane bird birdy bisect bismark bit bitch bite
biting blab black blade blair blake blame blanch bland blank blast blat blaze bleak bleat bled
bleed bleep blench blend blent bless blest bletch blimp blind bling blink blip bliss bloat blob
block blog blond blood bloom blot blotch blunt blur blurry blurt blush boar boat bob bobby bode
boding body bog bogart boggle boggy bogy boil bold bole bolt bond bone bong boning bonny bony
boob book boom boon boor boot bop borax boring bork born bosh boss bot botch botox bottle bout
bovine bowing box boy bract brad brady brag braid brain brake bramble bran branch brand brandy
brant brash brass brat bratty brave bray bread break bred breed brent brest bret bribe brick
bride brig brim brindle brine bring brink briny brisk brit britch brittle broad brock broil
broke brood brook broom brunch brunt brush brusk brut brute buck buckle bud buddy buffy buford
bug buggy bugling bul bulk bulky bully bum bumble bump bumpy bun bunch bundle bung bungle bunk
bunny bunt bur burk burn burt bury bush bushing busing buss bust busting but butane butch buzz
chad chafe chain chair chalk chalky chammy champ chan chang chant chanty chap chapt char charm
chart chary chat chatty cheap cheat check cheek cheep cheer chem chen cherry chess chest chevy
chick chid chide chil child chile chilly chily chime chimp chin chink chip chit chive chock
choir choke chomp chop choppy chord chubby chuck chuckle chug chum chummy chump chung chunk
chunky churn chute clack clad claim clair clam clammy clamp clan clang clank clap clark clash
class clay clean clear cleat cleft clem clench clerk click clime clinch cline cling clink clint
clip clipt clit clive clix cloak clock clod clog clomp clone clop clot cloud clout clove cloy
club cluck clump clung clunk clunky clutch conley convey convoy conway crab crabby crack crackle
craft crag craggy cram cramp crane crank cranky cranny crap crape crappy crash crass crate crave
cray craze crazy creak cream creat creed creek creel creep crept cress crest crib crick crime
crimp cring crinkle cripple croak croat crock croft crone crony crook croon crop cross crotch
croup crud cruddy crude cruft crumble crummy crumple crunch crush crust crusty crutch crux cry
dab dad daddy daffy daft dale dally dam damask dame damp dan dandle dandy dane dangle danish
dank danny danone danube dapple daring dark darn dart dash dashing dat date dating dative daub
dave davy day daze dazing dazzle dead deaf deal dean dear deb debark debate debby debite debunk
debute deck deckle decline deduct deed deem deep deer defame defect defend defile define deflate
deflect deform defray defrost deft defy degrade deject del delay delibe delint delude dem demand
dement deming demote den deng denny denote dent denude deny depart depend depict deplane deploy
deport deprave deprive dept depute derang derick deride derive describe desert desist desk
desmond despite destine destroy destruct detect detest detox detract devile devote dewey dick
did diddle dig digest dike diking dilate dilly dilute dim dime dimple din dine ding dining dink
dinky dint dip dipole direct direst dirk dirt dirty disarm dish dishing disk dislike dismay
disney display disport disprove dispute diss distant distend distort distract district distrust
ditch ditty dive divert divest divide divine diving dix dizzy dock dog doggy dogy dol dole
doling dolly dolt dome doming don donald donate done dongle donny doom door dope doping dopy
dork dorky dorm dory dosing dot dote doting dotty dour dove doze dozing drab draft drag drain
drake dram drank drape dray dread dream dreg drench dress drift dril drily drink drip drive
drizzle droid drolly drone drool droop drop dross drove drub drug drum drunk dry dub duchamp
duck duckle duct dud dude duding duffy dug duke dul dully duly dummy dump dumple dumpy dun
dunant dune dung dunk dupe duping dupont durant duress durex during dusk dusky dust dusting
dusty dutch duty employ enjoy envoy fact fad fade fading fag fail fain fair fake faking fal fame
famine famish fan fang fanny far faring farm fart fast fastest fasting fat fate fathome fating
fatty faun fax fay faze fazing fear feat feb febrile fed fedex feed feel feet fel feline felipe
felix felt fem female fen fend fer fern ferry fest festive fetch feting fetish fettle fewest fey
fezz fib fickle fiddle fife fig fil file filing filly film fin finale finch find fine finess
finest fining finish finite fink finny fir firing firm fish fishing fisk fist fit fitch five fix
fizz fizzle fizzy flab flabby flack flag flail flair flake flaky flame flan flank flap flash
flask flat flax flay fleck fled fleet flesh flex flick flinch fling flint flinty flip flippy
flirt flit float flock flog flood floor flop floppy flory floss flour flout flub fluffy fluke
fluky flume flung flunk flunky flurry flush flute flux fly foal foam fob fog foggy fogy foil
fold folk folly foment fond fondle font food fool foot fop for ford forest fork form fort forty
foul four fox frack frag frail frame fran frank franny frat fraud fray frazzle freak freckle
fred freddy freed freer french fresh fret frey frilly fring frisk frisky frizz frizzle frizzy
frock frog from frond front frost frosty froze frump frumpy fry fuck fud fuddle ful fully fum
fumble fume fuming fun fund fundy funk funky funny fur furry fury fusing fuss fusty futile fuze
fuzing fuzz fuzzy gab gabby gad gag gaggle gaging gail gain gait gal gale galosh gamble game
gamest gamine gaming gamy gang gangle gap gape gaping garish garote garry gary gash gashing
gasping gass gaswork gate gating gaul gave gay gaze gazing gear ged geed geek gel geld gelt gem
gen genome gent geny ger gerald gerard germ gerry gerund gestate get getty gibe gibing giddy
gide gift gig giggle gil gild gile gilt gimpy gin ginny gird girt gish gist give giving glad
glade gland glass glaze gleam glean glen glib glide glint glitch gloam gloat glob globe gloom
glop glory gloss glove glum glut goad goal goat gob god gog goggle gold golly gone gong gonk
good goof gook goon goop gop goring gorky gory gosh gosling got gout govern grab grackle grad
grade grady graft grail grain gram grammy grand granny grant grape grapple grass grate grave
gravy gray graze great greed greek green greer greet greg grep grey grid griddle gril grim grime
grimy grin grinch grind grip gripe grist grit gritty grizzle groan grog groggy groin groom grope
gross group grout grove grub grubby grumble grumpy grundy grunt gul gully gulp gum gummy gun
gunk gunny guppy gush gushing gust gusting gusty gut guzzle hack hackle had hade haft hag haggle
hail hair hake hal hale halt ham han hand handle handy hang hank hanky happy hard hardy hark
harm harry hart hash hast hasty hat hatch hate haul have hay haze hazy head heal heap hear heat
heck heckle heed heel heep heft held helm help hem hemp hen hench hep her herd hess hex hey hick
hid hide hike hilly hilt him hind hine hing hint hip hippy hiss hit hitch hive hob hobby hock
hod hog hold hole holly holt holy home homy hon hone hong honk hony hood hoof hook hoop hoot hop
hope hord horn host hot hour hove hub hubby huck hud huddle huffy hug hul hulk hum humble hume
hump hun hunch hung hunk hunt hurd hurry hurt hush husk husky hut hutch jab jack jade jag jaggy
jail jain jake jam jame jan jane jangle jape jar jay jazz jazzy jean jed jeep jeer jel jelly
jenny jerk jerky jerry jess jest jet jetty jib jibe jiffy jig jiggle jilt jim jimmy jingle jinny
jive joan job jock jody jog joggle join joke jolly jolt jon jone josh jot jove joy jude judy jug
juggle jul jule july jumble jump jumpy jun june jung jungle junk junky jury just jut jute kale
kan kane kant karate kate katy kay keat keck keel keen keep keg kelly kelp kemp ken kenny kent
kept kern kerry ketch kettle key kibosh kick kid kiddy kil kilt kim kin kind kindle king kink
kinky kip kipling kirk kiss kit kite kiting kitty koan kobe kong kook kopeck kory kubrick kurd
kurile kurt lab lack lad laddy lade lading lady lag laid lain lair lake lam lamaze lame lament
lamest laming lamont lamp land lane lang lank lanky lanny lap lapland lar lard lark larry lash
lashing lasing lass last lasting lat latch late latent latest latex lathing latrine latrobe laud
lavern lavish lax lay laze lazing lazy lead leaf leak lean leap lear led leed leek leer left leg
legate legend leggy legume leland lem len lenard lend lenny lent lept less lest lestrade let
levant levine levy lib libby lick lid life lift like likest liking lilly lilt lily lime liming
limite limp limy lin lind lindy line lining link lint linux lip lisping list listing lit lite
lithest little live livest living livy lix lizard lizzy load loaf loam loan lob lobby lobe lock
lode loft log loin lol lome lon lone long look loom loon loop loot lop lope loping lord lorn
lorry losing loss lost lot loud lout love loving lowest lowing lowish lox lube lubing luck lug
luke lul lully lump lumpy lunch lung lupe lupine luring lurk lush lushest lust lusting lusty
lute machine mack mad madame made maid mail maim main make making male malone malt man mandy
mane mang mangle many map mar marine mark marry mart marty mary mash mashing mask masking mass
mast mat match mate mating maud maul max may maze mead meal mean meat med meddle meek meet meg
mekong mel meld melt men mend merest merite merry mesh meshing mess met methane methink meting
mettle mewing mick microbe mid middle middy mig migrant migrate mike miking mil mild mile milk
milky mime mimick miming min mind mindy mine ming mingle mining mink mint minty minute mip mir
miring misprint miss mist mistake mistime misting mistrust misty mit mitch mite mitty mix moan
moat mob mobile mock mod mode modern modest modish module mohame mojave molass mold mole molest
molly molt mom moment mommy mon monk mont monty mony mood moon moor moot mop mope moping morale
morass morn mort moss most mote motile motive mottle move moving movy mowing mozart muck mud
muddle muddy muffle mug mugabe muggle muggy mul mule mulish mum mumble mummy mump munch mung
murine murk murky mush mushing musing musk musky muss must mustang mustard musty mutant mutate
mute mutest muting muzzle nab nadine nag nagy nail nair nake nam name naming nan nank nanny nap
napalm nape nappy nark nary nash nasty nat nate native natty nave navy nay neal near neat neck
ned need neg negate neglect nelly nerd nerdy nest nesting net nettle network newark newest nib
nichole nick nickle niggle nike nil nile nimble nine ninny nip nipple nippy nit nite nitrate nix
noblest nod noddy node nodule nome non none nook noon nope nor norm nosh noshing nosing not
notch note nothing noting notwork noun nozzle nub nubile nude nudest nudist nuke nuking nun nut
nutty nuzzle pack pact pad paddle paddy paging paid pail pain pair pal palate pale palest paling
palm pam pan pane pang panick pant panty pap par parade parent paring parish park parole parry
part party pass past pastern pastime pasting pasty pat patch pate patent patine patrick patty
paul pave paving pawing pay peak peal pear peat peck pedale pedant peddle peed peek peel peep
peer peg peggy peking pelt pen pend penile penny pent pep peppy per perile perish perk perky
perm perry pert pesky pest pet petard petite petty pick pickle pict piddle piffle pig piggy pike
piking pil pilate pile piling pilote pimp pimple pin pinch pine ping pining pink pinky pint pip
pipe piping pirate piss pit pitch pity pivote pizazz plaid plain plait plan plane plank plant
plate play plead pleat pled plenty pliny plod plonk plop plot ploy pluck plug plum plume plump
plung plunk plush pluss ply pock pod podunk poke poking poky pol poland pole poling polish
polite polk polly pomade pomp pond pone pony pool poop poor pop pope poppy poring pork porn port
posh poshest posing posite poss post posting pot potash potent pothole potty pour pout pox pram
prank prate prattle pray preen prep preppy press pretty prey prick prickle pride prig prim prime
primp print privy prize probe prod prom pron prone prong proof prop proud prove prude prune prut
pry pub puck pud puddle puffy pug puke puking pul pulp pulpy pump pun punch punish punk punt
puny pup puppy pur purest purist push pushing puss pustule put putty puzzle raby rack radish
raffle raft rag raging raid rail rain rake raking rakish rally ram ramble ramp ran ranch rand
randy rang rank rankle rant rap rape rapine raping rapist rapt rarest raring rash rashest
rasping rat rate rating rattle ratty raul rave ravine raving ravish rawest ray raze razing razz
read real ream reap rear rebate rebind reborn rebuke recheck recline red redone redraft reed
reef reek reel refile refine reflect reform refract refund refute regale regard regent regime
rehash reject relate relax relay relent relish relive rely rem remade remake remand remark
rematch remind remiss remote remove rename rend rent rep repast repay repent replay report
reprint reprove repute resale resend resent reside resist resold resort respect respelt respite
respond rest restart restate resting restive restock restrict result resume retake retard retch
rethink retold retort retract return revamp reveng revert revile revive revoke revolt reward
rewind reword rework rex rib ribald richard richest rick rid riddle ride riding rife rifest
riffle rifling rift rig rile riling rim rime riming rind ring ringle rink rip ripe ripest ripost
ripple rising risk risking risky rite rivale road roam roan roar rob robby robe robert robing
robust rock rod rode rodent rodrick roil rol roland role rolex rom rome romp ron ronald ronny
rood roof rook room root rope roping rory rosale rosine ross rostand rot rotate rote rotund rout
rove roving rowing roy rub rube ruby ruddy rude rudest rudy ruffle rug rule ruling rum rumble
rummy rump rumple run rune rung runny runt rupert rush rushing rusk russ rust rusting rusty rut
sabine sack sad saddle sade sadist safe safest sag sagest said sail sake sal sale saline salish
salk sally salome salt salty salute sam same sammy sample san sand sandy sane sanest sang sank
sap sapling sappy sar sarape sarong sash sass sat sate sating saturn saul saut savant save
saving sawing sax say scram scramble scrap scrape scrappy scratch scream screen scribe scrimp
scrip script scrod scrog scrol scrub scrubby scruffy scrunch seab seal seam sean sear seat
sebring seclude sect sedate seed seek seem seen seep seer sejong sel select semite sen senate
send senile sent sep sept serape serest serry sery sesame set settle severn seward sewing sex
shabby shack shackle shad shade shady shaft shag shaggy shake shaky shale shalt sham shamble
shame shammy shandy shane shank shanty shape shard shark shat shaun shave sheaf shear shed sheen
sheep sheer sheet shel shelly sherd sherry shift shil shim shimmy shin shine shingle shinny
shiny ship shir shirk shirt shit shitty shoal shock shod shoddy shone shook shoon shoot shop
shorn short shot shout shove shuck shuffle shun shunt shush shut shuttle shy sibling sick sickle
sid side siding sift sigurd silent silk silky silly silt sim simile simone simple sin sine sing
single sink sip sir siring sistine sit site siting six size sizing sizzle skate skeet sketch
skid skil skim skimp skimpy skin skinny skip skippy skirt skit skulk skunk sky slab slack slag
slain slake slam slang slant slap slash slat slate slave slay sled sleek sleep sleet slept slick
slid slide slily slim slime slimy sling slink slinky slip slit sloan slob slog sloop slop slope
sloppy slosh slot slug slum slump slung slunk slur slush slut sly smack smart smash smear smel
smelly smelt smile smirk smit smite smock smog smoggy smoke smoky smote smug smuggle smut smutty
snack snaffle snag snail snake snaky snap snapple snappy snark snarky snatch snazzy snead sneak
sneer snide sniffle snip snipe snippy snit snitch snob snobby snoop snoot snort snot snotty
snout snub snuck snuffle snug snuggle soak soap soar sob sock socrate sod soddy soft soggy soil
sol sold sole soling some son song sonny sony soon soot sop soppy sorest sorry sort sorty sot
soul soup sour sowing sox soy spackle spade spain spake spam span spangle spank spar spark spat
spate spay speak spear speck speckle sped speed speer spel spelt spend spent sperm sperry spiffy
spike spiky spil spilt spin spindle spine spiny spit spite spittle splash splat splay spleen
spline splint split splotch spock spoil spoke spong spoof spook spool spoon spoor sport sporty
spot spotty spout sprain sprang sprat spray spread spreed sprig spring sprinkle sprint sprite
sprout sprung spud spume spun spunk spunky spur spurn spurt spy stab stack stag staid stain
stair stake stal stale stalk stamp stan stanch stand stank star stark starry start stash stat
state stave stay stead steak steal steam steed steel steep steer stem stench stent step stern
stick stil stile stilt stine sting stink stint stipple stir stitch stoat stock stoke stol stole
stomp stone stony stood stool stoop stop stork storm story stout stove straddle strafe straggle
strain strait strand strangle strap stray streak stream street strep stress stretch strict
stride strife strike string strip stripe stript strive strobe strode stroke strol strong strop
strove struck struggle strum strung strut stub stubby stuck stud study stuffy stumble stump
stumpy stun stung stunk stunt sturdy sty sub sublime suborn suck suckle sud sulk sulky sully sum
sump sun sung sunk sunny sup supine supple surest suspect suspend suzy swab swaddle swag swain
swam swamp swampy swan swank swanky swap sward swarm swash swat swatch sway swear sweat sweep
sweet swel swept swift swig swil swim swindle swine swing swipe swish swiss switch swizzle swoon
swoop swop sword sworn swum swung tab tabby tabling tack tackle tact tad taffy taft tag tail
taip take taking tale talent talk tally tam tamale tame tamest taming tammy tamp tan tang tangle
tank tap tape taping tar taraze tardy taring tarry tart task tasking tass tast tasting tasty tat
tate tattle tatty taut tavern tax teak teal team tear teat ted teddy teed teem teen tel telex
temp temple ten tenant tend tenone tent term tern terry tess test testate testing testy tet tex
thad thale thame than thank thant thar that thatch theft them then they thick thimble thin thine
thing think third thirty thong thor thorn thud thug thule thump thunk thur thy tick tickle tide
tiding tidy tike til tile tiling tilt tim time timex timing timmy tin tine ting tingle tinkle
tinny tint tiny tip tipple tirade tiring tit tithing tittle tizzy toad toby tod toddle toddy
toffy tog toggle toil toke toking tol told tom tome tommy ton tone tong toning tony took tool
toot top topaze topple tor torn tort tory toss tost tot totale tote toting tour tout toward
towing toy track tract trade trail train trait tram tramp trample tran trap trash tray tread
treat treed tremble trench trend trendy trent tress trey tribe trick trickle trig trike tril
trim trip tripe trite trod trol trolly tromp tron troop trope trot troup trout troy truck
truckle trudy truffle truly trump trundle trunk truss trust trusty try tub tubby tube tubing
tuck tuft tug tulane tum tumble tummy tumult tun tune tuning tunny turd turing turk turn tush
tusk tut tux twaddle twain twang tweak tweed tweet twenty twerk twiddle twig twiggy twil twin
twine twing twink twinkle twinky twist twit twitch vagrant vain val vale vamp van vane vang
vanish vape vaping var vary vast vastest vat vax veal veep veer veggy veld vend vent vern very
vest vesting vet vetch vex vibe vibrant vibrate vike viking vile vilest vim vine vip virile
vising visite void voip vol vole volt volume vomite vote voting votive vowing wack wad waddle
wade waffle waft wag waggle waif wail wait wake wal wald wale walk walt wan wand wane wang
wangle wank want war ward warm warn wart warty wary wash wast wat watch wattle wave wavy wax way
weak weal wean wear web wed weed week weep weer weft wel weld welt wen wench wend wendy went
wept west wet wick wide wife wig wiggle wil wild wile willy wilt wily wimp wimple wimpy win
winch wind windy wine wing wink winkle wipe wiry wish wist wit witch witty wive wize wizz woke
womble won wong wonky wont wood woof wool word wordy work worm worn worry wot wove wuss zane
zanuck zany zap zeal zed zedong zen zest ziggy zing zip zippy zit zoloft zone zoning zonk zoom
zorn
"""


def template_words(cls):
    """Every word the templates of a class can produce (for --dict-hits)."""
    out = []
    for _, parts in NONCE_TEMPLATES[cls]:
        words = [""]
        for part in parts:
            words = [w + p for w in words for p in part]
        out.extend(words)
    return out


def draw_template_word(rng, cls):
    temps = NONCE_TEMPLATES[cls]
    r = rng.below(sum(wt for wt, _ in temps))
    for wt, parts in temps:
        if r < wt:
            return "".join(rng.choice(p) for p in parts)
        r -= wt
    raise AssertionError

# ----------------------------------------------------------------------------------------------
# Frames. A context is a frame (a sentence shape with a cue phrase) filled with a subject; the
# cue decides the form, the subject decides agreement (3sg goes / go, has / have, is / are / am).
# A token "x/y" is x after a 3rd-person-singular subject and y otherwise; "{be}" is am/is/are.
# Every context string cues exactly one form (asserted). No cue uses a past or past-participle
# word of an irregular (was, had, left, ...): those must stay out of pretraining.

PRONOUNS = ("i", "you", "he", "she", "it", "we", "they")
SING_NPS = ("the man", "the girl", "my dad", "a boy", "the cat", "my mom", "the dog", "her son")
PLURAL_NPS = ("the boys", "my friends", "the kids", "the girls", "my parents", "the men")
NAMES = ("tom", "anna", "sam", "mia", "ben", "lucy", "max", "emma")
SUBJECTS = PRONOUNS + SING_NPS + PLURAL_NPS + NAMES
THIRD = set(("he", "she", "it") + SING_NPS + NAMES)


def person(subj):
    """'3' (he, the man, tom), '1' (i) or 'p' (you, we, they, the boys)."""
    return "3" if subj in THIRD else ("1" if subj == "i" else "p")


# Cue families ('|' separates cues). Past times and present fronts go before the subject,
# adverbs after it; "-" is the empty cue (he has, he is).
# Time cues are built from templates and units, as speech builds them: a model that learns
# "last X", "X ago", "every X" can read a held-out "last friday" or "a fortnight ago". Some
# units occur only in held-out cues (NOVEL_UNITS).
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
SEASONS = "spring summer autumn winter".split()
PARTS = "morning evening afternoon".split()
NOVEL_UNITS = ("fortnight", "century")
PAST_TEMPLATES = (
    ("last {u}", ["night", "week", "weekend", "month", "year", "christmas", "time"] + SEASONS + DAYS),
    ("{u} ago", ["a week", "a month", "a year", "a moment", "a minute", "an hour", "a while",
                 "two days", "two weeks", "two years", "three days", "three weeks", "five years",
                 "long", "years", "ages", "some time", "a fortnight", "a century"]),
    ("that {u}", ["day", "night", "week", "summer", "winter"] + PARTS),
    ("the previous {u}", ["day", "night", "week", "year"]),
)
PAST_FIXED = "yesterday|earlier|back then|the other day|just now|in those days|in the old days|as a child"
PRES_TEMPLATES = (
    ("every {u}", ["day", "night", "week", "month", "year", "weekend", "fortnight"] + PARTS
     + SEASONS + DAYS),
    ("each {u}", ["day", "night", "week", "year", "summer", "winter"] + PARTS),
    ("most {u}", ["days", "nights", "weekends", "mornings", "evenings", "afternoons"]),
    ("on {u}", [d + "s" for d in DAYS] + ["weekends"]),
    ("in the {u}", ["mornings", "evenings", "afternoons"]),
)
PRES_FIXED = "now|nowadays|these days|as a rule|once a week|twice a week"


def templated(templates, fixed):
    """The cues of a family as a '|' list: the fixed ones, then every template filled."""
    return "|".join([fixed] + [t.replace("{u}", u) for t, units in templates for u in units])


PAST_TIMES = templated(PAST_TEMPLATES, PAST_FIXED)
PAST_ADVS = "once|recently|later|previously"
PRES_FRONTS = templated(PRES_TEMPLATES, PRES_FIXED)
PRES_ADVS = """often|usually|always|sometimes|rarely|seldom|normally|generally|typically|
regularly|frequently|mostly"""
# Base form only: modals, to-infinitives, do-support.
BASE_CUES = """will|can|must|should|might|may|could|would|will not|can not|must not|
should not|will never|can never|will also|can also|will always|must also|would rather|has/have to|ought to|needs/need to|wants/want to|
tries/try to|hopes/hope to|plans/plan to|seems/seem to|decides/decide to|{be} about to|
{be} going to|{be} able to|{be} ready to|{be} eager to|does/do not"""
PP_ADVS = """-|just|already|never|not|not yet|also|now|finally|probably|surely|certainly|
clearly|barely|hardly|nearly|almost|obviously"""
PP_MODALS = """will|must|might|should|could|would|may|will not|must not|should not|could not|
might not|would not"""
PP_FRONTS = "so far|by now|until now|up to now|since then|lately|this year|for years|at last"
ING_ADVS = "-|still|not|now|also|always|constantly|currently|slowly|quietly|happily"
ING_VERBS = """keeps/keep|enjoys/enjoy|avoids/avoid|misses/miss|dislikes/dislike|
keeps/keep on|{be} busy|will be|might be|must be|should be|could be|{be} good at|
{be} bad at|{be} afraid of|{be} tired of|{be} fond of|dreams/dream of"""
ING_FRONTS = """right now|at the moment|at present|today|tonight|this week|this morning|
this evening|for now"""


def cue_list(text):
    return tuple("" if c == "-" else c for c in (" ".join(p.split()) for p in
                                                  " ".join(text.split()).split("|")))


FAMILIES = {"past_time": cue_list(PAST_TIMES), "past_adv": cue_list(PAST_ADVS),
            "pres_front": cue_list(PRES_FRONTS), "pres_adv": cue_list(PRES_ADVS),
            "base_aux": cue_list(BASE_CUES), "pp_adv": cue_list(PP_ADVS),
            "pp_modal": cue_list(PP_MODALS), "pp_front": cue_list(PP_FRONTS),
            "ing_adv": cue_list(ING_ADVS), "ing_verb": cue_list(ING_VERBS),
            "ing_front": cue_list(ING_FRONTS)}

# Sentence shapes: (name, form group, template, cue family). Group "pres" gives 3sg or base by
# the subject. HELD_SHAPES are held out whole (every cue of them), for every seed.
SHAPES = (
    ("past_time", "past", "{c} {s}", "past_time"),        # yesterday he
    ("past_comma", "past", "{c}, {s}", "past_time"),      # yesterday, he
    ("past_also", "past", "{c} {s} also", "past_time"),   # yesterday he also
    ("past_adv", "past", "{s} {c}", "past_adv"),          # he once
    ("pres_front", "pres", "{c} {s}", "pres_front"),      # every day he
    ("pres_comma", "pres", "{c}, {s}", "pres_front"),     # every day, he
    ("pres_also", "pres", "{c} {s} also", "pres_front"),  # every day he also
    ("pres_adv", "pres", "{s} {c}", "pres_adv"),          # he often
    ("base_aux", "base", "{s} {c}", "base_aux"),          # he will, he wants to, he does not
    ("pp_has", "pp", "{s} has/have {c}", "pp_adv"),       # he has just
    ("pp_modal", "pp", "{s} {c} have", "pp_modal"),       # he might have
    ("pp_front", "pp", "{c} {s} has/have", "pp_front"),   # so far he has
    ("ing_prog", "ing", "{s} {be} {c}", "ing_adv"),       # he is still
    ("ing_verb", "ing", "{s} {c}", "ing_verb"),           # he keeps, he is busy
    ("ing_front", "ing", "{c} {s} {be}", "ing_front"),    # right now he is
    ("ing_comma", "ing", "{c}, {s} {be}", "ing_front"),   # right now, he is
)
HELD_SHAPES = ("pp_front", "ing_comma")
# Cue groups for the hold-out quota: (group, families); at least HOLD_FRACTION of each.
CUE_GROUPS = (("past", ("past_time", "past_adv")), ("3sg/base", ("pres_front", "pres_adv")),
              ("base", ("base_aux",)), ("pp", ("pp_adv", "pp_modal", "pp_front")),
              ("ing", ("ing_adv", "ing_verb", "ing_front")))
HOLD_FRACTION = 0.25
# A held-out frame must still be decidable from what training shows:
# - the held-out shapes put a front cue before an auxiliary ("so far he has", "right now, he
#   is"): the auxiliary decides, as in the seen "right now he is"; their pieces (the comma
#   after a front cue, the auxiliary at the end) are seen in other shapes. A shape held out
#   for one form while its twin is seen for another ("yesterday, he" against "every day, he")
#   would teach "a comma means the present" instead;
# - a held-out time cue keeps its template and its unit seen in other cues ("last friday"
#   held out: "last monday" and "every friday" seen), except the novel units;
# - the cues whose own word is the only clue (he once, he often, he avoids, in those days)
#   stay seen (FORCED_SEEN).
# Always held out. NOVEL_HELD: their words occur in no seen frame (fortnight, century, twice,
# eager, barely, currently); the rest of the frame says the form (ago, is ... to, has).
# has now / may have / ages ago: short held-out frames ("i may have ", "ages ago i ") so that
# the longest held-out regular verbs (remember -> remembered) fit a few.
NOVEL_HELD = (("past_time", "a fortnight ago"), ("past_time", "a century ago"),
              ("pres_front", "every fortnight"), ("pres_front", "twice a week"), ("base_aux", "{be} eager to"),
              ("pp_adv", "barely"), ("ing_adv", "currently"))
FORCED_HELD = NOVEL_HELD + (("pp_adv", "now"), ("pp_modal", "may"), ("past_time", "ages ago"))
# Always seen: the core cues every file leans on.
FORCED_SEEN = (("past_time", "yesterday"), ("past_time", "last night"), ("past_time", "earlier"),
               ("pres_front", "once a week"), ("past_time", "just now"), ("pres_front", "these days"),
               ("past_adv", "once"), ("past_adv", "recently"), ("past_adv", "later"),
               ("past_adv", "previously"), ("past_time", "in those days"),
               ("past_time", "in the old days"), ("pres_front", "in the mornings"),
               ("pres_front", "on sundays"), ("pres_front", "on weekends"),
               ("pres_front", "as a rule"), ("pres_front", "nowadays"), ("past_time", "back then"),
               ("base_aux", "can never"), ("base_aux", "will also"),
               ("base_aux", "will always"), ("ing_verb", "avoids/avoid"),
               ("ing_verb", "misses/miss"), ("ing_verb", "dislikes/dislike"),
               ("ing_verb", "keeps/keep on"), ("base_aux", "would rather"),
               ("pres_front", "now"), ("pres_front", "every day"),
               ("pres_adv", "often"), ("pres_adv", "usually"), ("base_aux", "will"),
               ("base_aux", "can"), ("base_aux", "wants/want to"), ("base_aux", "does/do not"),
               ("pp_adv", ""), ("pp_adv", "just"), ("pp_adv", "not"), ("pp_adv", "already"),
               ("pp_adv", "never"), ("pp_modal", "will"), ("pp_modal", "must"),
               ("pp_modal", "might"), ("ing_adv", ""), ("ing_adv", "still"), ("ing_adv", "not"),
               ("ing_adv", "now"), ("ing_verb", "keeps/keep"), ("ing_verb", "enjoys/enjoy"),
               ("ing_verb", "will be"), ("ing_verb", "{be} busy"))
# be has no form after these: "he often is", "he does not be", "he will be being".
BE_NONE = (("pres_adv", None), ("base_aux", "does/do not"), ("ing_verb", "{be} busy"),
           ("ing_verb", "will be"), ("ing_verb", "might be"), ("ing_verb", "must be"),
           ("ing_verb", "should be"), ("ing_verb", "could be"))
PRES_FRONT_SHAPES = ("pres_front", "pres_comma", "pres_also")


def cue_parts(family, cue):
    """(template, unit) of a templated time cue, or None."""
    templates = {"past_time": PAST_TEMPLATES, "pres_front": PRES_TEMPLATES}.get(family, ())
    for t, units in templates:
        for u in units:
            if t.replace("{u}", u) == cue:
                return t, u
    return None


def realize(template, cue, subj, pers):
    """The words of template with cue and subject filled in, agreeing with person pers."""
    text = template.replace("{c}", cue).replace("{s}", subj)
    out = []
    for tok in text.split():
        if "/" in tok:
            tok = tok.split("/")[0 if pers == "3" else 1]
        elif tok == "{be}":
            tok = {"3": "is", "1": "am", "p": "are"}[pers]
        out.append(tok)
    return " ".join(out) + " "


class Ctx:
    __slots__ = ("form", "text", "subj", "shape", "family", "cue", "held")

    def __init__(self, form, text, subj, shape, family, cue):
        self.form, self.text, self.subj = form, text, subj
        self.shape, self.family, self.cue = shape, family, cue
        self.held = False


def build_contexts():
    ctxs, seen = [], {}
    for shape, group, template, family in SHAPES:
        for cue in FAMILIES[family]:
            for s in SUBJECTS:
                form = group if group != "pres" else ("3sg" if person(s) == "3" else "base")
                c = Ctx(form, realize(template, cue, s, person(s)), s, shape, family, cue)
                assert not c.text.startswith(" ") and "  " not in c.text, c.text
                assert seen.setdefault(c.text, form) == form, "context cues two forms: " + c.text
                ctxs.append(c)
    assert len(seen) == len(ctxs), "duplicate context"
    return ctxs


CONTEXTS = build_contexts()
CTX_BY_TEXT = {c.text: c for c in CONTEXTS}
CONTEXT_WORDS = sorted({w.strip(",") for c in CONTEXTS for w in c.text.split()})
SHAPE_INDEX = {s[0]: i for i, s in enumerate(SHAPES)}
SHAPE_TEMPLATE = {}
for _shape in SHAPES:
    SHAPE_TEMPLATE.setdefault(_shape[3], _shape[2])
del _shape


def cue_patterns(family, cue):
    """The word sequences that give a cue away: the part of each of its shapes' templates on
    the cue's side of the subject, in every agreement (e.g. 'has just', 'a fortnight ago ,')."""
    pats = []
    for shape, _, template, fam in SHAPES:
        if fam != family:
            continue
        piece = [p for p in template.split("{s}") if "{c}" in p][0]
        for pers in "31p":
            pat = realize(piece, cue, "", pers).replace(",", " ,").split()
            if pat and " ".join(pat) not in pats:
                pats.append(" ".join(pat))
    return pats


def tokens_of(text):
    return " " + " ".join(text.replace(",", " ,").split()) + " "


def cue_eligible(family, cue, frame_texts):
    """A cue can be held out only if no frame of another cue contains its patterns (else the
    held-out phrase would still occur in training)."""
    pats = cue_patterns(family, cue)
    if not cue or not pats:
        return False
    for (fam, c), texts in frame_texts.items():
        if (fam, c) == (family, cue):
            continue
        for t in texts:
            if any(" " + p + " " in t for p in pats):
                return False
    return True


def held_shape_families():
    """Cue families used only by held-out shapes (pp_front, ing_front): all their cues are
    held out."""
    return {fam for _, _, _, fam in SHAPES} - \
        {fam for name, _, _, fam in SHAPES if name not in HELD_SHAPES}


def forced_seen():
    """FORCED_SEEN, every single-adverb cue after the subject (he often, he once) and every
    time cue not built from a template (the other day, these days): a new one says nothing a
    model could know about the form."""
    fixed = [("past_time", c) for c in cue_list(PAST_FIXED)] + \
        [("pres_front", c) for c in cue_list(PRES_FIXED)]
    return set(FORCED_SEEN) | {fc for fc in fixed if fc not in NOVEL_HELD} | \
        {(f, c) for f in ("past_adv", "pres_adv", "ing_front") for c in FAMILIES[f]}


def keeps_parts_seen(held, fc):
    """Whether holding out cue fc = (family, cue) still leaves its template in a seen cue of its
    family and its unit's word in a seen time cue ("last friday" held out: "last monday" and
    "every friday" seen). Novel units are meant to be new."""
    parts = cue_parts(*fc)
    if parts is None:
        return True
    t, u = parts
    if any(n in u.split() for n in NOVEL_UNITS):
        return True
    others = [(f, c) for f in ("past_time", "pres_front") for c in FAMILIES[f]
              if (f, c) not in held and (f, c) != fc]
    template_seen = any((cue_parts(f, c) or ("",))[0] == t for f, c in others if f == fc[0])
    return template_seen and any(u.split()[-1] in c.split() for _, c in others)


def choose_held_frames(seed):
    """Marks every context of a held-out frame (held-out cue or held-out shape). Returns the
    held-out cues as (family, cue) in family order."""
    frame_texts = {}
    for shape, _, template, fam in SHAPES:
        for cue in FAMILIES[fam]:
            frame_texts.setdefault((fam, cue), []).extend(
                tokens_of(realize(template, cue, "S", p)) for p in "31p")
    rng = fork(seed, "held_frames")
    held = set(FORCED_HELD)
    only_held_shape = held_shape_families()
    for group, fams in CUE_GROUPS:
        cues = [(f, c) for f in fams for c in FAMILIES[f]]
        need = math.ceil(len(cues) * HOLD_FRACTION)
        have = [fc for fc in cues if fc in held or fc[0] in only_held_shape]
        pool = [fc for fc in cues if fc not in held and fc not in forced_seen()
                and fc[0] not in only_held_shape and cue_eligible(fc[0], fc[1], frame_texts)]
        # the seen shapes must lose a quarter too, not only the held-out-shape families
        seen_cues = [fc for fc in cues if fc[0] not in only_held_shape]
        need_seen = math.ceil(len(seen_cues) * HOLD_FRACTION)
        have_seen = [fc for fc in have if fc[0] not in only_held_shape]
        k = max(need - len(have), need_seen - len(have_seen), 0)
        rng.shuffle(pool)
        for fc in pool:  # in random order, each kept only if the frame stays decidable
            if k == 0:
                break
            if keeps_parts_seen(held, fc):
                held.add(fc)
                k -= 1
        assert k == 0, ("too few cues can be held out", group)
    for fc in held:
        assert cue_eligible(fc[0], fc[1], frame_texts), ("cue occurs in another frame", fc)
    for c in CONTEXTS:
        c.held = (c.family, c.cue) in held or c.shape in HELD_SHAPES
    return [(f, c) for f in FAMILIES for c in FAMILIES[f] if (f, c) in held]

# ----------------------------------------------------------------------------------------------


class Verb:
    __slots__ = ("lemma", "kind", "cls", "forms", "distractor")

    def __init__(self, lemma, kind, cls, forms, distractor=None):
        self.lemma, self.kind, self.cls = lemma, kind, cls
        self.forms, self.distractor = forms, distractor

    def words(self):
        out = [self.lemma]
        for f in FORMS:
            for w in self.forms[f].split("|"):
                if w not in out:
                    out.append(w)
        return out


def be_none(ctx):
    return (ctx.family, None) in BE_NONE or (ctx.family, ctx.cue) in BE_NONE


def completion(v, ctx):
    """The form of v that ctx cues, or None where the context does not suit v (only be)."""
    f = ctx.form
    if v.lemma != "be":
        return v.forms[f]
    if be_none(ctx):
        return None
    p = person(ctx.subj)
    if f == "past":
        return "were" if p == "p" else "was"
    if f in ("3sg", "base") and ctx.shape in PRES_FRONT_SHAPES:
        return {"3": "is", "1": "am", "p": "are"}[p]    # every day i am, now they are
    if f == "3sg":
        return None
    return v.forms[f].split("|")[0]                     # been, being, be (he will be)


def seq_len(v, ctx, word):
    return len(v.lemma) + 2 + len(ctx.text) + len(word) + 1


def fits(v, ctx, comp, with_distractor):
    if seq_len(v, ctx, comp) > CONTEXT:
        return False
    return not (with_distractor and seq_len(v, ctx, v.distractor) > CONTEXT)


# Contexts per (held, form), shortest first, so that the ones a verb fits are a prefix.
POOLS, POOL_LENS = {}, {}


def index_contexts():
    for held in (False, True):
        for f in FORMS:
            pool = sorted((c for c in CONTEXTS if c.form == f and c.held == held),
                          key=lambda c: len(c.text))    # stable: ties keep inventory order
            POOLS[held, f] = pool
            POOL_LENS[held, f] = [len(c.text) for c in pool]


def candidates(v, form, held=False, with_distractor=False, exclude=()):
    """The contexts of the seen (or held-out) frames that cue form, suit v and fit."""
    pool = POOLS[held, form]
    if v.lemma != "be":
        word = max(len(v.forms[form]), len(v.distractor) if with_distractor else 0)
        pool = pool[:bisect.bisect_right(POOL_LENS[held, form],
                                         CONTEXT - 3 - len(v.lemma) - word)]
        return [c for c in pool if c.text not in exclude] if exclude else list(pool)
    out = []
    for c in pool:
        comp = completion(v, c)
        if comp is not None and c.text not in exclude and fits(v, c, comp, with_distractor):
            out.append(c)
    return out


def record(v, ctx, with_distractor):
    rec = {"prompt": v.lemma + ": " + ctx.text, "completion": completion(v, ctx),
           "verb": v.lemma, "form": ctx.form}
    if with_distractor:
        rec["distractor"] = v.distractor
    return rec


def parse_table(text, ncols):
    rows = []
    for line in text.strip().splitlines():
        cols = line.split()
        assert len(cols) == ncols, line
        rows.append(cols)
    return rows


def build_irregulars():
    ft, unseen, large = [], [], []
    for rows, kind, out in ((FINETUNE_IRREGULARS, "irreg", ft),
                            (UNSEEN_IRREGULARS, "unseen", unseen),
                            (LARGE_IRREGULARS, "large", large)):
        for lemma, past, pp, s3, ing in parse_table(rows, 5):
            distractor = DISTRACTOR_OVERRIDES.get(lemma, regularize(lemma))
            if lemma not in DISTRACTOR_OVERRIDES:
                assert syllables(lemma) == 1, lemma
            base = "be|am|are" if lemma == "be" else lemma
            forms = {"past": past, "pp": pp, "3sg": s3, "base": base, "ing": ing}
            out.append(Verb(lemma, kind, "irregular", forms, distractor))
    assert [v.lemma for v in ft] == ["be", "have", "do", "go", "come", "see", "eat", "write"]
    want = {"be": "bed", "have": "haved", "do": "doed", "go": "goed", "come": "comed",
            "see": "seed", "eat": "eated", "write": "writed", "run": "runned", "fly": "flied",
            "buy": "buyed", "make": "maked", "dig": "digged", "win": "winned", "say": "sayed",
            "bite": "bited", "forget": "forgetted", "forgive": "forgived", "throw": "throwed"}
    for v in ft + unseen + large:
        assert want.get(v.lemma, v.distractor) == v.distractor, (v.lemma, v.distractor)
    assert len(large) == 40
    for v in large:     # the non-past forms follow the rule (only the past and pp are irregular)
        if v.lemma not in DISTRACTOR_OVERRIDES:
            assert (v.forms["3sg"], v.forms["ing"]) == \
                regular_forms(v.lemma, auto_double(v.lemma))[1:], v.lemma
    return ft, unseen, large


def check_real_table(rows):
    """Every row agrees with the rule; for monosyllables the rule also decides the doubling."""
    seen = set()
    for lemma, past, s3, ing in rows:
        assert lemma not in seen, "duplicate verb " + lemma
        seen.add(lemma)
        assert lemma.isalpha() and lemma.islower() and 2 <= len(lemma) <= 8, lemma
        dbl = (not lemma.endswith(("e", "y"))) and past == lemma + lemma[-1] + "ed"
        assert (past, s3, ing) == regular_forms(lemma, dbl), ("table disagrees", lemma)
        if syllables(lemma) == 1:
            assert dbl == auto_double(lemma), ("monosyllable doubling", lemma)


def build_real(rows):
    check_real_table(rows)
    verbs = []
    for lemma, past, s3, ing in rows:
        kind = "control" if lemma in CONTROL_VERBS else "real"
        forms = {"past": past, "pp": past, "3sg": s3, "base": lemma, "ing": ing}
        verbs.append(Verb(lemma, kind, spelling_class(lemma, past), forms))
    assert sorted(v.lemma for v in verbs if v.kind == "control") == sorted(CONTROL_VERBS)
    return verbs


def choose_heldout(seed, real):
    rng = fork(seed, "heldout")
    ctx_words = set(CONTEXT_WORDS)
    chosen = []
    for cls, n in HELDOUT_QUOTA:
        pool = [v for v in real if v.kind == "real" and v.cls == cls
                and len(v.lemma) + len(v.forms["past"]) <= HELDOUT_MAX_LEN
                and not any(w in ctx_words for w in v.words())]
        rng.shuffle(pool)
        if cls == "double":
            poly = [v for v in pool if syllables(v.lemma) > 1][:HELDOUT_DOUBLE_POLY]
            mono = [v for v in pool if syllables(v.lemma) == 1][:n - len(poly)]
            pick = poly + mono
        else:
            pick = pool[:n]
        assert len(pick) == n, cls
        chosen.extend(pick)
    names = {v.lemma for v in chosen}
    for v in real:
        if v.lemma in names:
            v.kind = "heldout"
    return [v for v in real if v.kind == "heldout"]


def is_unsavory(word):
    return any(bad in word for bad in UNSAVORY)


def build_nonce(seed, taken):
    """taken: word -> lemma of every real/irregular word (lemmas, forms, distractors)."""
    blocked = set(DICT_WORDS.split()) | set(CONTEXT_WORDS)
    nonce = []
    for cls, quota in NONCE_QUOTA:
        rng = fork(seed, "nonce:" + cls)
        got, tries = 0, 0
        while got < quota:
            tries += 1
            assert tries < 200000, "nonce class %s cannot be filled" % cls
            lemma = draw_template_word(rng, cls)
            if not 3 <= len(lemma) <= 8 or lemma in blocked:
                continue
            dbl = auto_double(lemma)
            past, s3, ing = regular_forms(lemma, dbl)
            words = [lemma, past, s3, ing]
            if any(w in taken or w in blocked or is_unsavory(w) for w in words):
                continue
            got_cls = spelling_class(lemma, past)
            if cls == "es":
                assert got_cls == "plain" and s3 == lemma + "es", lemma
            else:
                assert got_cls == cls, (lemma, cls, got_cls)
            if ends_cvc(lemma) and not dbl:
                continue        # a polysyllable ending in CVC: doubling would depend on stress
            forms = {"past": past, "pp": past, "3sg": s3, "base": lemma, "ing": ing}
            v = Verb(lemma, "nonce", cls, forms)
            for w in words:
                taken[w] = lemma
            nonce.append(v)
            got += 1
    return nonce


def build_verbs(seed):
    ft, unseen, large = build_irregulars()
    real = build_real(parse_table(REAL_REGULARS, 4))
    heldout = choose_heldout(seed, real)
    lemmas = [v.lemma for v in ft + unseen + large + real]
    assert len(set(lemmas)) == len(lemmas), "a verb is listed twice"
    taken = {}
    ctx_words = set(CONTEXT_WORDS)
    for v in large:     # no form of a new irregular is a context word (keep/keeps is one)
        assert not any(w in ctx_words for w in v.words() + [v.distractor]), v.lemma
    for v in ft + unseen + large + real:
        ws = v.words() + ([v.distractor] if v.distractor else [])
        for w in ws:
            assert taken.setdefault(w, v.lemma) == v.lemma, \
                "%s is a form of both %s and %s" % (w, taken[w], v.lemma)
    nonce = build_nonce(seed, taken)   # taken holds the large-set words too: never nonce forms
    return ft, unseen, large, real, heldout, nonce



# ----------------------------------------------------------------------------------------------
# Files. Every file draws from its own PRNG stream. "Seen frames" files use only contexts of
# seen frames; the *_new.jsonl files only contexts of held-out frames.

PRETRAIN_REAL_K = 4          # contexts per form of each real regular verb in pretrain.jsonl
PRETRAIN_NONCE_K = (2, 3)    # of a nonce verb: 2 or 3, drawn
PRETRAIN_IRREG_K = 36        # of each non-past form of an irregular
PRETRAIN_BE_K = 108          # of be's: am/is/are by subject is three verbs' worth of agreement


def pretrain_k(v):
    return PRETRAIN_BE_K if v.lemma == "be" else PRETRAIN_IRREG_K
VAL_REGULAR = 1000           # regular records in pretrain_val.jsonl (plus 1 per irregular form)
FT_SPLIT = (100, 12, 25)     # irreg*.jsonl: train, val, test sentences per verb and past/pp
LARGE_SPLIT = (7, 1, 2)      # irreg_large*.jsonl: the first of those parts
CONTROL_PER_FORM = 10
UNSEEN_PER_FORM = 2
HELDOUT_PER_FORM = 3
NONPAST_PER_FORM = 50        # irreg_nonpast*.jsonl: per fine-tune irregular and non-past form
LARGE_NONPAST_PER_FORM = 3   # irreg_large_nonpast*.jsonl: per verb and non-past form
REPLAY_REAL, REPLAY_NONCE = 1200, 800   # regular past/pp records in replay.jsonl
REPLAY_FT_PER_FORM = 50      # non-past records per form of each fine-tune irregular in replay
REPLAY_OTHER_PER_FORM = 3    # per non-past form of each unseen or large-set irregular
NEW_TEST_PER_FORM = 25       # irreg_test_new.jsonl
NEW_LARGE_PER_FORM = 4       # irreg_large_test_new.jsonl


SUBJECT_CLASSES = (("i",), tuple(p for p in PRONOUNS if p != "i"), SING_NPS, PLURAL_NPS, NAMES)


def subject_class(subj):
    return [i for i, cls in enumerate(SUBJECT_CLASSES) if subj in cls][0]


def spread_order(rng, cands):
    """All of cands in an order spread over the shapes and subject classes (i, the other
    pronouns, singular and plural noun phrases, names; so "i am" is not 1 in 29): round robin
    over the (shape, class) groups in a random order, a random remaining context each time."""
    groups = {}
    for c in cands:
        groups.setdefault((c.shape, subject_class(c.subj)), []).append(c)
    groups = [groups[k] for k in sorted(groups, key=lambda k: (SHAPE_INDEX[k[0]], k[1]))]
    for g in groups:
        rng.shuffle(g)
    rng.shuffle(groups)
    out = []
    while groups:
        for g in groups:
            out.append(g.pop())
        groups = [g for g in groups if g]
    return out


def be_groups(v, f, cands, k):
    """[(contexts, how many)]: be's base form is drawn half am/are, half be."""
    if v.lemma == "be" and f == "base":
        return [([c for c in cands if c.shape in PRES_FRONT_SHAPES], k // 2),
                ([c for c in cands if c.shape not in PRES_FRONT_SHAPES], k - k // 2)]
    return [(cands, k)]


def pick_nonpast(rng, v, f, cands, k, what):
    out = []
    for group, n in be_groups(v, f, cands, k):
        assert len(group) >= n, ("%s: too few contexts fit" % what, v.lemma, f, len(group), n)
        out += spread_order(rng, group)[:n]
    return out


def make_pretrain(seed, regular, irregulars):
    """Regular verbs in all five forms (a few uniform random contexts each), irregulars in
    their non-past forms only (PRETRAIN_IRREG_K each, spread over the shapes). Returns the
    records and used: (lemma, form) -> set of contexts."""
    rng = fork(seed, "pretrain")
    used, recs = {}, []
    for v in regular:
        k = PRETRAIN_REAL_K if v.kind != "nonce" else \
            PRETRAIN_NONCE_K[0] + rng.below(PRETRAIN_NONCE_K[1] - PRETRAIN_NONCE_K[0] + 1)
        for f in FORMS:
            cands = candidates(v, f)
            assert len(cands) > k, ("too few contexts fit", v.lemma, f)
            for c in rng.sample(cands, k):
                used.setdefault((v.lemma, f), set()).add(c.text)
                recs.append(record(v, c, False))
    for v in irregulars:
        for f in NONPAST:
            for c in pick_nonpast(rng, v, f, candidates(v, f), pretrain_k(v), "pretrain"):
                used.setdefault((v.lemma, f), set()).add(c.text)
                recs.append(record(v, c, False))
    rng.shuffle(recs)
    return recs, used


def make_pretrain_val(seed, regular, irregulars, used):
    """One record per irregular non-past form and VAL_REGULAR regular ones, each in a context
    not used for that verb and form in pretrain.jsonl."""
    rng = fork(seed, "pretrain_val")
    recs = []
    for v in irregulars:
        for f in NONPAST:
            recs.append(record(v, rng.choice(candidates(v, f, exclude=used[(v.lemma, f)])), False))
    pairs = [(v, f) for v in regular for f in FORMS]
    for v, f in rng.sample(pairs, VAL_REGULAR):
        recs.append(record(v, rng.choice(candidates(v, f, exclude=used[(v.lemma, f)])), False))
    rng.shuffle(recs)
    return recs


def irreg_order(seed, v, f, held):
    """One seeded spread-out order of every context (seen or held-out frames) where v's form f
    and its distractor fit. The fine-tune files cut segments from it (test | val | train, of
    FT_SPLIT sizes); the large set takes the first few of each segment, so its sentences of
    the 8 fine-tune verbs are subsets of irreg*.jsonl and no prompt crosses train/val/test."""
    label = "irreg_new" if held else "irreg"
    return spread_order(fork(seed, "%s:%s:%s" % (label, v.lemma, f)),
                        candidates(v, f, held, True))


def make_irreg_splits(seed, verbs, take):
    """(train, val, test) records: the first take[i] of each FT_SPLIT segment."""
    n_tr, n_va, n_te = FT_SPLIT
    parts = ([], [], [])
    for v in verbs:
        for f in PASTLIKE:
            order = irreg_order(seed, v, f, False)
            segs = (order[n_te + n_va:n_te + n_va + n_tr], order[n_te:n_te + n_va], order[:n_te])
            for part, seg, k in zip(parts, segs, take):
                assert len(seg) >= k, ("too few contexts fit", v.lemma, f, len(order))
                part += [record(v, c, True) for c in seg[:k]]
    return parts


def make_irreg_new(seed, verbs, k):
    """The new-frame test: the first k of each verb and form's held-out-frame order."""
    recs = []
    for v in verbs:
        for f in PASTLIKE:
            order = irreg_order(seed, v, f, True)
            assert len(order) >= k, ("too few held-out contexts fit", v.lemma, f, len(order))
            recs += [record(v, c, True) for c in order[:k]]
    return recs


def make_eval_set(seed, label, verbs, per_form, with_distractor, used, held):
    """past/pp of verbs, per_form contexts each spread over the shapes, none used for that verb
    and form in pretraining."""
    rng = fork(seed, label)
    recs = []
    for v in verbs:
        for f in PASTLIKE:
            cands = candidates(v, f, held, with_distractor, exclude=used.get((v.lemma, f), ()))
            assert len(cands) >= per_form, (label, v.lemma, f, len(cands))
            recs += [record(v, c, with_distractor) for c in spread_order(rng, cands)[:per_form]]
    return recs


def make_nonpast(seed, label, verbs, per_form, held, avoid):
    """3sg/base/ing of verbs, per_form each (be base: half am/are/is, half be), spread over the
    shapes, never a prompt of avoid."""
    rng = fork(seed, label)
    recs = []
    for v in verbs:
        for f in NONPAST:
            cands = [c for c in candidates(v, f, held) if v.lemma + ": " + c.text not in avoid]
            recs += [record(v, c, False) for c in pick_nonpast(rng, v, f, cands, per_form, label)]
    return recs


def make_replay(seed, real_pool, nonce_pool, ft, others, avoid):
    """Regular past/pp records (distinct prompts) plus the irregulars' non-past forms in seen
    frames (never a prompt of avoid), shuffled together."""
    rng = fork(seed, "replay")
    recs, prompts = [], set()
    for pool, n in ((real_pool, REPLAY_REAL), (nonce_pool, REPLAY_NONCE)):
        got = 0
        while got < n:
            v, f = rng.choice(pool), rng.choice(PASTLIKE)
            c = rng.choice(candidates(v, f))
            if v.lemma + ": " + c.text not in prompts:
                prompts.add(v.lemma + ": " + c.text)
                recs.append(record(v, c, False))
                got += 1
    for v in ft + others:
        k = REPLAY_FT_PER_FORM if v.kind == "irreg" else REPLAY_OTHER_PER_FORM
        for f in NONPAST:
            cands = [c for c in candidates(v, f) if v.lemma + ": " + c.text not in avoid]
            recs += [record(v, c, False) for c in pick_nonpast(rng, v, f, cands, k, "replay")]
    rng.shuffle(recs)
    return recs


def prompts_of(*files):
    return {r["prompt"] for recs in files for r in recs}

# ----------------------------------------------------------------------------------------------
# Validation: everything the consumers rely on, checked before anything is written.

class DataError(Exception):
    pass


def require(cond, msg):
    if not cond:
        raise DataError(msg)


IRREG_KINDS = ("irreg", "unseen", "large")
# Files in which no past/pp word of an irregular and no over-regularized form may appear.
NO_PASTLIKE = ("pretrain.jsonl", "pretrain_val.jsonl", "replay.jsonl", "irreg_nonpast.jsonl",
               "irreg_large_nonpast.jsonl", "irreg_nonpast_new.jsonl",
               "irreg_large_nonpast_new.jsonl")
TRAINING = ("pretrain.jsonl", "pretrain_val.jsonl", "replay.jsonl", "irreg.jsonl",
            "irreg_val.jsonl", "irreg_large.jsonl", "irreg_large_val.jsonl")
# file -> (verb kinds, forms, with distractor)
KIND_RULES = {
    "irreg.jsonl": (("irreg",), PASTLIKE, True),
    "irreg_val.jsonl": (("irreg",), PASTLIKE, True),
    "irreg_test.jsonl": (("irreg",), PASTLIKE, True),
    "irreg_test_new.jsonl": (("irreg",), PASTLIKE, True),
    "irreg_large.jsonl": (("irreg", "large"), PASTLIKE, True),
    "irreg_large_val.jsonl": (("irreg", "large"), PASTLIKE, True),
    "irreg_large_test.jsonl": (("irreg", "large"), PASTLIKE, True),
    "irreg_large_test_new.jsonl": (("irreg", "large"), PASTLIKE, True),
    "irreg_unseen.jsonl": (("unseen",), PASTLIKE, True),
    "irreg_unseen_new.jsonl": (("unseen",), PASTLIKE, True),
    "control_regular.jsonl": (("control",), PASTLIKE, False),
    "control_new.jsonl": (("control",), PASTLIKE, False),
    "regular_heldout.jsonl": (("heldout",), PASTLIKE, False),
    "regular_heldout_new.jsonl": (("heldout",), PASTLIKE, False),
    "irreg_nonpast.jsonl": (("irreg",), NONPAST, False),
    "irreg_nonpast_new.jsonl": (("irreg",), NONPAST, False),
    "irreg_large_nonpast.jsonl": (("irreg", "large"), NONPAST, False),
    "irreg_large_nonpast_new.jsonl": (("irreg", "large"), NONPAST, False),
    "pretrain.jsonl": (("real", "control", "nonce") + IRREG_KINDS, FORMS, False),
    "pretrain_val.jsonl": (("real", "control", "nonce") + IRREG_KINDS, FORMS, False),
}
# (train-side file, eval-side file) pairs that must share no prompt.
DISJOINT = [(a, b) for a in ("irreg.jsonl", "irreg_large.jsonl")
            for b in ("irreg_val.jsonl", "irreg_test.jsonl", "irreg_large_val.jsonl",
                      "irreg_large_test.jsonl")] + \
    [(a, b) for a in ("irreg_val.jsonl", "irreg_large_val.jsonl")
     for b in ("irreg_test.jsonl", "irreg_large_test.jsonl")] + \
    [(a, b) for a in ("pretrain.jsonl", "pretrain_val.jsonl", "replay.jsonl", "irreg.jsonl",
                      "irreg_large.jsonl")
     for b in ("irreg_nonpast.jsonl", "irreg_large_nonpast.jsonl")] + \
    [("pretrain.jsonl", "pretrain_val.jsonl"), ("pretrain.jsonl", "control_regular.jsonl"),
     ("pretrain.jsonl", "irreg_unseen.jsonl"), ("irreg_nonpast.jsonl", "irreg_large_nonpast.jsonl")]


def agreement_ok(ctx):
    """Independent of realize(): the first agreeing word after the subject matches it."""
    toks, st = ctx.text.replace(",", " ").split(), ctx.subj.split()
    at = [i for i in range(len(toks)) if toks[i:i + len(st)] == st][0]
    words = toks[at + len(st):]
    if not words:
        return True
    w, p = words[0], person(ctx.subj)
    third = {"has", "is", "does", "needs", "wants", "tries", "hopes", "plans", "seems",
             "decides", "keeps", "enjoys", "avoids", "misses", "dislikes", "dreams"}
    other = {"have", "do", "need", "want", "try", "hope", "plan", "seem", "decide", "keep",
             "enjoy", "avoid", "miss", "dislike", "dream"}
    if w == "am":
        return p == "1"
    if w == "are":
        return p == "p"
    if w in third:
        return p == "3"
    if w in other:
        return p != "3"
    return True


def check_records(name, recs, by_lemma, forbidden, heldout_words):
    seen = set()
    vocab = set(VOCAB)
    new = name.endswith("_new.jsonl")
    for i, r in enumerate(recs, 1):
        where = "%s:%d" % (name, i)
        keys = ["prompt", "completion", "verb", "form"] + (["distractor"] if "distractor" in r else [])
        require(list(r) == keys, where + ": keys " + ",".join(r))
        p, comp, lemma, form = r["prompt"], r["completion"], r["verb"], r["form"]
        for field in keys[:2] + keys[4:]:
            for j, ch in enumerate(r[field]):
                require(ch in vocab and ch != "\n",
                        "%s: symbol %r outside the vocabulary in %s at %d" % (where, ch, field, j))
        require(len(p) + len(comp) + 1 <= CONTEXT, where + ": longer than the context")
        require(form in FORMS and lemma in by_lemma, where + ": verb/form")
        v = by_lemma[lemma]
        kinds, forms, dist = KIND_RULES.get(name, (None, None, None))
        if name == "replay.jsonl":
            require((v.kind in ("real", "nonce") and form in PASTLIKE) or
                    (v.kind in IRREG_KINDS and form in NONPAST), where + ": replay record")
        else:
            require(v.kind in kinds and form in forms and ("distractor" in r) == dist,
                    where + ": not a record of this file (verb kind, form, distractor)")
        if "distractor" in r:
            require(len(p) + len(r["distractor"]) + 1 <= CONTEXT,
                    where + ": distractor longer than the context")
            require(r["distractor"] == v.distractor, where + ": distractor")
        require(p.startswith(lemma + ": ") and p.endswith(" ") and "  " not in p,
                where + ": prompt shape")
        ctx = CTX_BY_TEXT.get(p[len(lemma) + 2:])
        require(ctx is not None and ctx.form == form and completion(v, ctx) == comp and
                comp in v.forms[form].split("|"),
                where + ": context does not cue this completion (be: agreement)")
        require(agreement_ok(ctx), where + ": subject and verb disagree")
        require(ctx.held == new, where + (": seen frame in a new-frame file" if new else
                                          ": held-out frame in a seen-frame file"))
        require((p, comp) not in seen, where + ": duplicate example")
        seen.add((p, comp))
        if name in NO_PASTLIKE:
            words = p.replace(":", " ").replace(",", " ").split() + [comp]
            bad = [w for w in words if w in forbidden]
            require(not bad, where + ": irregular past/pp leaks: " + " ".join(bad))
            require(not (v.kind in IRREG_KINDS and form in PASTLIKE), where + ": irregular past/pp")
        if name in TRAINING or name == "replay.jsonl":
            bad = [w for w in p.replace(":", " ").split() + [comp] if w in heldout_words]
            require(not bad, where + ": held-out verb word: " + " ".join(bad))


def check_held_frames(d, held_cues):
    """No held-out cue phrase and no novel word occurs in a seen-frame file; every subject and
    every seen shape occurs in pretrain.jsonl; the new-frame files use every held-out shape."""
    seen_ctx = {r["prompt"].split(": ", 1)[1] for name, recs in d.items()
                if not name.endswith("_new.jsonl") for r in recs}
    seen_toks = [tokens_of(t) for t in sorted(seen_ctx)]
    for fam, cue in held_cues:
        for pat in cue_patterns(fam, cue):
            hit = [t for t in seen_toks if " " + pat + " " in t]
            require(not hit, "held-out cue %r occurs in a seen-frame file: %r" % (pat, hit[:1]))
    seen_words = {w for t in seen_toks for w in t.split()}
    new_words = {w for name, recs in d.items() if name.endswith("_new.jsonl")
                 for r in recs for w in tokens_of(r["prompt"].split(": ", 1)[1]).split()}
    for fam, cue in NOVEL_HELD:
        novel = [w for w in cue.split() if w not in seen_words and "{" not in w]
        require(novel, "forced held-out cue %r has no novel word" % cue)
        require(all(w in new_words for w in novel), "novel word of %r in no new file" % cue)
    pre = {CTX_BY_TEXT[r["prompt"].split(": ", 1)[1]] for r in d["pretrain.jsonl"]}
    for s in SUBJECTS:
        require(any(c.subj == s for c in pre), "subject %r not in pretrain.jsonl" % s)
    for shape in SHAPES:
        if shape[0] not in HELD_SHAPES:
            require(any(c.shape == shape[0] for c in pre), "shape %s not pretrained" % shape[0])
    new_shapes = {CTX_BY_TEXT[r["prompt"].split(": ", 1)[1]].shape for name, recs in d.items()
                  if name.endswith("_new.jsonl") for r in recs}
    for shape in HELD_SHAPES:
        require(shape in new_shapes, "held-out shape %s in no new-frame file" % shape)


def check_counts(d, ft, unseen, large, real, nonce, irregular):
    def count(name):
        out = {}
        for r in d[name]:
            out[(r["verb"], r["form"])] = out.get((r["verb"], r["form"]), 0) + 1
        return out
    for name, verbs, forms, k in (
            ("irreg.jsonl", ft, PASTLIKE, FT_SPLIT[0]), ("irreg_val.jsonl", ft, PASTLIKE, FT_SPLIT[1]),
            ("irreg_test.jsonl", ft, PASTLIKE, FT_SPLIT[2]),
            ("irreg_large.jsonl", ft + large, PASTLIKE, LARGE_SPLIT[0]),
            ("irreg_large_val.jsonl", ft + large, PASTLIKE, LARGE_SPLIT[1]),
            ("irreg_large_test.jsonl", ft + large, PASTLIKE, LARGE_SPLIT[2]),
            ("irreg_test_new.jsonl", ft, PASTLIKE, NEW_TEST_PER_FORM),
            ("irreg_large_test_new.jsonl", ft + large, PASTLIKE, NEW_LARGE_PER_FORM),
            ("irreg_nonpast.jsonl", ft, NONPAST, NONPAST_PER_FORM),
            ("irreg_nonpast_new.jsonl", ft, NONPAST, NONPAST_PER_FORM),
            ("irreg_large_nonpast.jsonl", ft + large, NONPAST, LARGE_NONPAST_PER_FORM),
            ("irreg_large_nonpast_new.jsonl", ft + large, NONPAST, LARGE_NONPAST_PER_FORM),
            ("pretrain.jsonl", [v for v in irregular if v.lemma != "be"], NONPAST, PRETRAIN_IRREG_K),
            ("pretrain.jsonl", [v for v in irregular if v.lemma == "be"], NONPAST, PRETRAIN_BE_K),
            ("replay.jsonl", ft, NONPAST, REPLAY_FT_PER_FORM),
            ("replay.jsonl", unseen + large, NONPAST, REPLAY_OTHER_PER_FORM)):
        got = count(name)
        for v in verbs:
            for f in forms:
                require(got.get((v.lemma, f)) == k, "%s: %s %s %s times, not %d"
                        % (name, v.lemma, f, got.get((v.lemma, f), 0), k))
    pre_verbs = {r["verb"] for r in d["pretrain.jsonl"]}
    for v in real + nonce + irregular:
        if v.kind != "heldout":
            require(v.lemma in pre_verbs, "pretrain.jsonl lacks the verb " + v.lemma)


def validate(files, held_cues, ft, unseen, large, real, heldout, nonce):
    by_lemma = {v.lemma: v for v in ft + unseen + large + real + nonce}
    irregular = ft + unseen + large
    nonpast_irr = {w for v in irregular for f in NONPAST for w in v.forms[f].split("|")}
    nonpast_irr |= {v.lemma for v in irregular}
    forbidden = set()                     # irregular past/pp and over-regularized words
    for v in irregular:
        for f in PASTLIKE:
            forbidden.update(v.forms[f].split("|"))
        forbidden.add(v.distractor)
    forbidden -= nonpast_irr              # come (pp = base), run (pp = base), hit, let, ...
    heldout_words = {w for v in heldout for w in v.words()}
    d = dict(files)
    for name, recs in files:
        check_records(name, recs, by_lemma, forbidden, heldout_words)
    prompts = {name: {r["prompt"] for r in recs} for name, recs in files}
    for a, b in DISJOINT:
        both = sorted(prompts[a] & prompts[b])
        require(not both, "%s and %s share the prompt %r" % (a, b, both[0] if both else ""))
    irr_replay = {r["prompt"] for r in d["replay.jsonl"] if r["form"] in NONPAST}
    both = sorted(irr_replay & prompts["pretrain_val.jsonl"])
    require(not both, "replay.jsonl and pretrain_val.jsonl share %r" % (both[:1],))
    for name, sub, sup in (("irreg_large.jsonl", "irreg", "irreg.jsonl"),
                           ("irreg_large_val.jsonl", "irreg", "irreg_val.jsonl"),
                           ("irreg_large_test.jsonl", "irreg", "irreg_test.jsonl"),
                           ("irreg_large_test_new.jsonl", "irreg", "irreg_test_new.jsonl")):
        extra = [r["prompt"] for r in d[name] if by_lemma[r["verb"]].kind == sub
                 and r["prompt"] not in prompts[sup]]
        require(not extra, "%s: %r not in %s" % (name, extra[:1], sup))
    check_held_frames(d, held_cues)
    check_counts(d, ft, unseen, large, real, nonce, irregular)

# ----------------------------------------------------------------------------------------------

def dumps(rec):
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def jsonl_bytes(recs):
    return "".join(dumps(r) + "\n" for r in recs).encode("utf-8")


SEEN_FILE_NOTES = (
    ("pretrain.jsonl", "pretraining corpus: every pretraining regular verb (real, control, "
     "nonce) in all 5 forms, %d (real) or 2-3 (nonce) random contexts each; the 72 irregulars "
     "in 3sg/base/ing only, %d contexts per form (be: %d) spread over the shapes. Shuffled."
     % (PRETRAIN_REAL_K, PRETRAIN_IRREG_K, PRETRAIN_BE_K)),
    ("pretrain_val.jsonl", "validation for pretraining: %d regular records and one per non-past "
     "form of each irregular, contexts not used for that verb and form in pretrain.jsonl."
     % VAL_REGULAR),
    ("irreg.jsonl", "fine-tune train: past and pp of the 8 irregulars, %d per verb and form, "
     "with distractor. Shuffled." % FT_SPLIT[0]),
    ("irreg_val.jsonl", "fine-tune validation: %d per verb and form." % FT_SPLIT[1]),
    ("irreg_test.jsonl", "held-out sentences of the 8 irregulars (seen frames), %d per verb and "
     "form: the exact-match and preference test on seen frames." % FT_SPLIT[2]),
    ("control_regular.jsonl", "past and pp of the 12 control verbs, %d per form, contexts not "
     "used with that verb in pretraining." % CONTROL_PER_FORM),
    ("irreg_unseen.jsonl", "past and pp of the 24 irregulars never fine-tuned on, %d per form, "
     "with distractor." % UNSEEN_PER_FORM),
    ("irreg_nonpast.jsonl", "3sg, base and ing of the 8 irregulars, %d per form (be base: half "
     "am/are/is, half be), prompts in no training file: do the non-past forms survive "
     "fine-tuning?" % NONPAST_PER_FORM),
    ("regular_heldout.jsonl", "past and pp of the 40 real regular verbs absent from pretraining, "
     "%d per form." % HELDOUT_PER_FORM),
    ("replay.jsonl", "mixed into fine-tuning against forgetting: %d regular past/pp records "
     "(%d real, %d nonce; no control or held-out verb), %d per non-past form of each fine-tune "
     "irregular and %d per non-past form of each unseen or large-set one; never an irregular's "
     "past or pp, never a prompt of pretrain_val.jsonl or irreg*_nonpast*.jsonl. Shuffled."
     % (REPLAY_REAL + REPLAY_NONCE, REPLAY_REAL, REPLAY_NONCE, REPLAY_FT_PER_FORM,
        REPLAY_OTHER_PER_FORM)),
    ("irreg_large.jsonl", "larger fine-tune train set: past and pp of 48 irregulars (the 8 and "
     "the 40 large-set ones), %d per verb and form, with distractor. Shuffled." % LARGE_SPLIT[0]),
    ("irreg_large_val.jsonl", "its validation: %d per verb and form." % LARGE_SPLIT[1]),
    ("irreg_large_test.jsonl", "its held-out test (seen frames): %d per verb and form."
     % LARGE_SPLIT[2]),
    ("irreg_large_nonpast.jsonl", "3sg, base and ing of the 48 irregulars, %d per form, prompts "
     "in no training file and not in irreg_nonpast.jsonl." % LARGE_NONPAST_PER_FORM),
)
NEW_FILE_NOTES = (
    ("irreg_test_new.jsonl", "past and pp of the 8 fine-tune irregulars, %d per verb and form, "
     "with distractor." % NEW_TEST_PER_FORM),
    ("irreg_large_test_new.jsonl", "past and pp of the 48 irregulars, %d per verb and form, with "
     "distractor (the 8 verbs' records are a subset of irreg_test_new.jsonl)."
     % NEW_LARGE_PER_FORM),
    ("control_new.jsonl", "past and pp of the 12 control verbs, %d per form." % CONTROL_PER_FORM),
    ("regular_heldout_new.jsonl", "past and pp of the 40 held-out real regular verbs, %d per form."
     % HELDOUT_PER_FORM),
    ("irreg_unseen_new.jsonl", "past and pp of the 24 unseen irregulars, %d per form, with "
     "distractor." % UNSEEN_PER_FORM),
    ("irreg_nonpast_new.jsonl", "3sg, base and ing of the 8 fine-tune irregulars, %d per form (be "
     "base: half am/are/is, half be)." % NONPAST_PER_FORM),
    ("irreg_large_nonpast_new.jsonl", "3sg, base and ing of the 48 irregulars, %d per form."
     % LARGE_NONPAST_PER_FORM),
)
FILE_NOTES = SEEN_FILE_NOTES + NEW_FILE_NOTES

SHAPE_EXAMPLES = {
    "past_time": "yesterday he", "past_comma": "yesterday, he", "past_also": "yesterday he also",
    "past_adv": "he once", "pres_front": "every day the man / every day they",
    "pres_comma": "every day, tom", "pres_also": "every day he also", "pres_adv": "she often",
    "base_aux": "he will, she wants to, they do not, i am about to", "pp_has": "he has just",
    "pp_modal": "they might have", "pp_front": "so far he has", "ing_prog": "he is still",
    "ing_verb": "she keeps, we are busy, he is afraid of", "ing_front": "right now they are",
    "ing_comma": "right now, she is"}


def cue_shown(fam, cue):
    """The cue with the words of its first shape on its side of the subject (has now, may
    have, is currently), agreement shown as is/are."""
    piece = [p for p in SHAPE_TEMPLATE[fam].split("{s}") if "{c}" in p][0]
    return " ".join(piece.replace("{c}", cue).replace("{be}", "is/are").split())


def frame_stats(held_cues):
    """[(group, families, seen cues, held-out cues)] for the README and the log."""
    held = set(held_cues) | {(f, c) for f in held_shape_families() for c in FAMILIES[f]}
    rows = []
    for group, fams in CUE_GROUPS:
        cues = [(f, c) for f in fams for c in FAMILIES[f]]
        rows.append((group, fams, [fc for fc in cues if fc not in held],
                     [fc for fc in cues if fc in held]))
    return rows


def readme_text(seed, counts, verb_counts, class_rows, ft, unseen, large, heldout, held_cues,
                novel):
    L = ["# minilora data\n"]
    L.append("Generated by `%s` (seed %d); do not edit by hand. Regenerate and check with:\n"
             % (GENERATOR, seed))
    L.append("```sh\npython3 scripts/gen_data.py            # writes data/*.jsonl, "
             "MANIFEST.json, README.md\nsh tests/test_data.sh                  # regenerates "
             "into a temp dir and compares with MANIFEST.json\n```\n")
    L.append("The generator uses only the Python standard library and its own splitmix64 PRNG, "
             "forked per purpose from the seed; the output is byte for byte the same on every "
             "run.\n")
    L.append("## Format\n")
    L.append("JSONL, one object per line, keys in this order:\n")
    L.append("```\n" + dumps({"prompt": "go: last night they ", "completion": "went",
                              "verb": "go", "form": "past", "distractor": "goed"}) + "\n```\n")
    L.append("`prompt` is `<lemma>: <context> `; the context cues the form, and each context "
             "string cues exactly one form. `form` is one of `past`, `pp` (past participle), "
             "`3sg`, `base` (present non-3rd person or bare infinitive), `ing`. `distractor` "
             "(past/pp records of irregular verbs in the fine-tune/eval files only) is the "
             "over-regularized past (goed, eated, seed, runned, flied, buyed). Every example fits "
             "the 32-symbol context: len(prompt) + len(completion) + 1 <= 32, and the same with "
             "the distractor; long frames simply take the shorter verbs. Pretraining uses "
             "prompt/completion records too (loss on the completion and end token only), not "
             "`{\"text\": ...}`.\n")
    L.append("## Frames\n")
    L.append("A context is a frame (a sentence shape with a cue phrase) filled with a subject. "
             "Subjects (%d, all of them in training frames): pronouns %s; singular noun phrases "
             "%s; plural noun phrases %s; names %s. The subject decides agreement: 3sg goes / "
             "base go, has/have, is/are/am, does/do, wants/want; be: past was/were, present "
             "am/is/are.\n" % (len(SUBJECTS), ", ".join(PRONOUNS), ", ".join(SING_NPS),
                               ", ".join(PLURAL_NPS), ", ".join(NAMES)))
    L.append("| shape | form | example | frames |\n| --- | --- | --- | --- |")
    for name, group, template, fam in SHAPES:
        form = "3sg/base" if group == "pres" else group
        L.append("| %s | %s | `%s` | %s |" % (
            name, form, SHAPE_EXAMPLES[name],
            "**held out** (every cue)" if name in HELD_SHAPES else "seen, except with a "
            "held-out cue"))
    L.append("")
    only = sorted(held_shape_families())
    L.append("A frame is held out if its cue or its shape is. Cues per group%s:\n" % (
        " (the cues of %s occur in no seen shape, so they are all held out)" % ", ".join(only)
        if only else ""))
    L.append("| group | cues | seen | held out |\n| --- | ---: | ---: | ---: |")
    for group, fams, s, h in frame_stats(held_cues):
        L.append("| %s (%s) | %d | %d | %d |" % (group, ", ".join(fams), len(s) + len(h),
                                                   len(s), len(h)))
    L.append("")
    L.append("Held-out cues, shown with the words of their shape (seed %d; %s are held out "
             "for every seed: their words occur in no seen frame; has now and may have are "
             "too, so that the longest held-out regular verbs fit a few held-out frames):\n"
             % (seed, ", ".join(cue_shown(f, c) for f, c in NOVEL_HELD)))
    for group, fams, s, h in frame_stats(held_cues):
        for fam in fams:
            cues = [cue_shown(f, c) for f, c in h if f == fam]
            if cues:
                L.append("- %s: %s" % (fam, ", ".join(cues)))
    L.append("")
    L.append("Held-out shapes: %s. Words that occur only in held-out frames: %s.\n"
             % (", ".join(HELD_SHAPES), ", ".join(novel)))
    L.append("Seen cues:\n")
    for group, fams, s, h in frame_stats(held_cues):
        for fam in fams:
            cues = [cue_shown(f, c) for f, c in s if f == fam]
            if cues:
                L.append("- %s: %s" % (fam, ", ".join(cues)))
    L.append("")
    L.append("## Files\n")
    L.append("Seen frames: the pretraining, replay and fine-tune files, and the tests on "
             "held-out (verb, context) pairs of the frames that those files use.\n")
    L.append("| file | lines | what |\n| --- | ---: | --- |")
    for name, note in SEEN_FILE_NOTES:
        L.append("| `%s` | %d | %s |" % (name, counts[name], note))
    L.append("")
    L.append("New frames: tests on held-out frames only (any subject); no held-out frame "
             "occurs in any seen-frame file.\n")
    L.append("| file | lines | what |\n| --- | ---: | --- |")
    for name, note in NEW_FILE_NOTES:
        L.append("| `%s` | %d | %s |" % (name, counts[name], note))
    L.append("")
    L.append("`MANIFEST.json` lists each file's lines, bytes and sha256.\n")
    L.append("## Verbs\n")
    L.append("| group | verbs |\n| --- | ---: |")
    for k, n in verb_counts:
        L.append("| %s | %d |" % (k, n))
    L.append("")
    L.append("Fine-tune irregulars: " + ", ".join(
        "%s (%s/%s)" % (v.lemma, v.forms["past"].replace("|", ", "), v.forms["pp"])
        for v in ft) + ".\n")
    L.append("Large-set irregulars (fine-tuned only in irreg_large*.jsonl): " + ", ".join(
        "%s (%s/%s)" % (v.lemma, v.forms["past"], v.forms["pp"]) for v in large) + ".\n")
    L.append("Unseen irregulars (in no fine-tune file): " + ", ".join(v.lemma for v in unseen)
             + ".\n")
    L.append("Held-out real regular verbs (never in pretrain*.jsonl or replay): " +
             ", ".join(v.lemma for v in heldout) + ".\n")
    L.append("Spelling classes of the regular verbs:\n")
    L.append("| class | rule | real (pretrained) | held out | controls | nonce |\n"
             "| --- | --- | ---: | ---: | ---: | ---: |")
    for cls, note, a, b, c, n in class_rows:
        L.append("| %s | %s | %d | %d | %d | %d |" % (cls, note, a, b, c, n))
    L.append("")
    L.append("## How it is built\n")
    L.append("- The irregulars (the 8 fine-tune verbs, the 40 large-set ones and the 24 unseen "
             "ones) appear in pretraining only in 3sg/base/ing forms; no past or past-participle "
             "word of an irregular (went, was, had, done, left, ...) and no over-regularized "
             "form appears anywhere in pretrain*.jsonl, replay.jsonl or irreg*_nonpast*.jsonl, "
             "prompts included (so the cues use has/have, not had, and is/are, not was/were). "
             "The zero-change verbs hit, hurt, let and shut spell their past like their base, so "
             "those words do occur there, as base forms.")
    L.append("- Real regular verbs are stored with their forms in a table (doubling depends on "
             "stress: prefer -> preferred, offer -> offered); the rule is asserted to agree on "
             "every row. Nonce verbs (3-8 letters, after Berko 1958) are built from "
             "onset/nucleus/coda inventories and take the rule's forms; none is a word in the "
             "script's lists, a context word or in the wamerican dictionary, and none shares a "
             "form with another verb or an irregular's distractor.")
    L.append("- Held-out frames: at least %d%% of the cues of each group are drawn (seeded) "
             "among those whose phrase occurs in no other frame, plus the shapes %s whole. "
             "Checked: every record of a seen-frame file has a seen frame and every record of a "
             "*_new.jsonl file a held-out one; no held-out cue phrase (with the words of its "
             "shape on its side of the subject, e.g. `has barely`) occurs in a seen-frame file; "
             "the novel words occur in no seen-frame file; every subject and seen shape occurs "
             "in pretrain.jsonl; subject-verb agreement; the fit; no prompt shared between a "
             "train file and a test file." % (int(HOLD_FRACTION * 100), ", ".join(HELD_SHAPES)))
    L.append("- Draws are spread over the shapes and subject classes (round robin over the "
             "(shape; i, other pronouns, singular noun phrases, plural noun phrases, names) "
             "groups in a random order, a random context of the group each time; pretraining "
             "draws of regular verbs are uniform); be's base form is drawn half "
             "am/are/is (present fronts), half be (modals, to-infinitives).")
    L.append("- Fine-tune splits: per verb and form one seeded spread-out order of every seen "
             "context that fits (with the distractor); irreg_test.jsonl takes the first %d, "
             "irreg_val.jsonl the next %d, irreg.jsonl the next %d. irreg_large*.jsonl take the "
             "first %d/%d/%d of those same segments, so the 8 verbs' sentences there are subsets "
             "of irreg*.jsonl and no prompt is in a train file of either set and a val or test "
             "file of either set. The new-frame tests cut the same way from an order of the "
             "held-out contexts." % (FT_SPLIT[2], FT_SPLIT[1], FT_SPLIT[0], LARGE_SPLIT[0],
                                     LARGE_SPLIT[1], LARGE_SPLIT[2]))
    L.append("- irreg_nonpast.jsonl and irreg_large_nonpast.jsonl use contexts not used for "
             "that verb and form in pretrain.jsonl and prompts of no other file; replay.jsonl "
             "is drawn after them and avoids their prompts and those of pretrain_val.jsonl.")
    return "\n".join(L) + "\n"


def dict_hits(path):
    """Template words whose lemma or a regular form is a dictionary word (maintenance)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        words = {w.strip().lower() for w in fh if w.strip().isalpha()}
    hits = set()
    for cls, _ in NONCE_QUOTA:
        for w in template_words(cls):
            if 3 <= len(w) <= 8:
                past, s3, ing = regular_forms(w, auto_double(w))
                if any(x in words for x in (w, past, s3, ing)):
                    hits.add(w)
    return sorted(hits)


def novel_words():
    """Words that occur only in held-out frames."""
    seen = {w for c in CONTEXTS if not c.held for w in c.text.replace(",", " ").split()}
    out = []
    for c in CONTEXTS:
        for w in c.text.replace(",", " ").split():
            if c.held and w not in seen and w not in out:
                out.append(w)
    return out


def make_files(seed, ft, unseen, large, real, heldout, nonce):
    controls = [v for v in real if v.kind == "control"]
    real_pre = [v for v in real if v.kind == "real"]
    irregulars = ft + unseen + large
    pretrain, used = make_pretrain(seed, real_pre + controls + nonce, irregulars)
    pretrain_val = make_pretrain_val(seed, real_pre + controls + nonce, irregulars, used)
    irreg, irreg_val, irreg_test = make_irreg_splits(seed, ft, FT_SPLIT)
    large_tr, large_val, large_test = make_irreg_splits(seed, ft + large, LARGE_SPLIT)
    fork(seed, "irreg:train").shuffle(irreg)            # train files shuffled, as before
    fork(seed, "irreg_large:train").shuffle(large_tr)
    control = make_eval_set(seed, "control", controls, CONTROL_PER_FORM, False, used, False)
    unseen_recs = make_eval_set(seed, "unseen", unseen, UNSEEN_PER_FORM, True, used, False)
    heldout_recs = make_eval_set(seed, "heldout", heldout, HELDOUT_PER_FORM, False, used, False)
    trained = prompts_of(pretrain, pretrain_val)
    nonpast = make_nonpast(seed, "irreg_nonpast", ft, NONPAST_PER_FORM, False, trained)
    large_np = make_nonpast(seed, "irreg_large_nonpast", ft + large, LARGE_NONPAST_PER_FORM,
                            False, trained | prompts_of(nonpast))
    replay = make_replay(seed, real_pre, nonce, ft, unseen + large,
                         prompts_of(pretrain_val, nonpast, large_np))
    return [
        ("pretrain.jsonl", pretrain), ("pretrain_val.jsonl", pretrain_val),
        ("irreg.jsonl", irreg), ("irreg_val.jsonl", irreg_val), ("irreg_test.jsonl", irreg_test),
        ("control_regular.jsonl", control), ("irreg_unseen.jsonl", unseen_recs),
        ("irreg_nonpast.jsonl", nonpast), ("regular_heldout.jsonl", heldout_recs),
        ("replay.jsonl", replay), ("irreg_large.jsonl", large_tr),
        ("irreg_large_val.jsonl", large_val), ("irreg_large_test.jsonl", large_test),
        ("irreg_large_nonpast.jsonl", large_np),
        ("irreg_test_new.jsonl", make_irreg_new(seed, ft, NEW_TEST_PER_FORM)),
        ("irreg_large_test_new.jsonl", make_irreg_new(seed, ft + large, NEW_LARGE_PER_FORM)),
        ("control_new.jsonl", make_eval_set(seed, "control_new", controls, CONTROL_PER_FORM,
                                            False, {}, True)),
        ("regular_heldout_new.jsonl", make_eval_set(seed, "heldout_new", heldout,
                                                    HELDOUT_PER_FORM, False, {}, True)),
        ("irreg_unseen_new.jsonl", make_eval_set(seed, "unseen_new", unseen, UNSEEN_PER_FORM,
                                                 True, {}, True)),
        ("irreg_nonpast_new.jsonl", make_nonpast(seed, "irreg_nonpast_new", ft, NONPAST_PER_FORM,
                                                 True, ())),
        ("irreg_large_nonpast_new.jsonl", make_nonpast(seed, "irreg_large_nonpast_new",
                                                       ft + large, LARGE_NONPAST_PER_FORM,
                                                       True, ())),
    ]


def class_table(real_pre, heldout, controls, nonce):
    def in_class(v, cls):   # real verbs with 3sg -es stay in their past class too
        if cls == "es" and v.kind != "nonce":
            return v.forms["3sg"] == v.lemma + "es"
        return v.cls == cls
    return [(cls, CLASS_NOTES[cls]) + tuple(sum(in_class(v, cls) for v in group)
                                            for group in (real_pre, heldout, controls, nonce))
            for cls in ("plain", "e", "cy", "vy", "double", "nodouble", "es")]


def write_outputs(out, outputs):
    os.makedirs(out, exist_ok=True)
    for name, blob in outputs:
        path = os.path.join(out, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "data"),
                    help="output directory (default: data/)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="PRNG seed (default %(default)s)")
    ap.add_argument("--dict-hits", metavar="WORDLIST",
                    help="maintenance: print the template words that are real words, then exit")
    args = ap.parse_args(argv)
    if args.dict_hits:
        print("\n".join(dict_hits(args.dict_hits)))
        return 0
    cfg = os.path.join(here, "..", "configs", "minigpt.json")
    if os.path.exists(cfg):
        with open(cfg, encoding="utf-8") as fh:
            conf = json.load(fh)
        if conf.get("vocab") != VOCAB or conf.get("context") != CONTEXT:
            print("gen_data: configs/minigpt.json vocab/context differ from this script's",
                  file=sys.stderr)
            return 1
    seed = args.seed
    held_cues = choose_held_frames(seed)
    index_contexts()
    ft, unseen, large, real, heldout, nonce = build_verbs(seed)
    files = make_files(seed, ft, unseen, large, real, heldout, nonce)
    assert [n for n, _ in files] == [n for n, _ in FILE_NOTES]
    try:
        validate(files, held_cues, ft, unseen, large, real, heldout, nonce)
    except DataError as e:
        print("gen_data: invalid data: %s" % e, file=sys.stderr)
        return 1

    blobs = [(name, jsonl_bytes(recs)) for name, recs in files]
    manifest = {"generator": GENERATOR, "seed": seed, "files": [
        {"file": name, "lines": blob.count(b"\n"), "bytes": len(blob),
         "sha256": hashlib.sha256(blob).hexdigest()} for name, blob in blobs]}
    counts = {name: len(recs) for name, recs in files}
    controls = [v for v in real if v.kind == "control"]
    real_pre = [v for v in real if v.kind == "real"]
    verb_counts = [
        ("irregular, fine-tuned (irreg*.jsonl and irreg_large*.jsonl)", len(ft)),
        ("irregular, fine-tuned in irreg_large*.jsonl only", len(large)),
        ("irregular, unseen", len(unseen)),
        ("regular controls", len(controls)), ("real regular, pretrained", len(real_pre)),
        ("real regular, held out", len(heldout)), ("nonce regular", len(nonce))]
    class_rows = class_table(real_pre, heldout, controls, nonce)
    novel = novel_words()
    readme = readme_text(seed, counts, verb_counts, class_rows, ft, unseen, large, heldout,
                         held_cues, novel)
    write_outputs(args.out, blobs + [
        ("MANIFEST.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")),
        ("README.md", readme.encode("utf-8"))])

    print("gen_data: seed %d -> %s" % (seed, os.path.normpath(args.out)))
    for name, blob in blobs:
        print("  %-30s %6d lines %9d bytes" % (name, counts[name], len(blob)))
    print("  contexts: %d (%d in held-out frames), %d subjects"
          % (len(CONTEXTS), sum(c.held for c in CONTEXTS), len(SUBJECTS)))
    for group, fams, s, h in frame_stats(held_cues):
        print("  cues %-9s seen %3d  held out %3d: %s"
              % (group, len(s), len(h), ", ".join(cue_shown(f, c) for f, c in h)))
    print("  held-out shapes: " + ", ".join(HELD_SHAPES))
    print("  words only in held-out frames: " + " ".join(novel))
    print("  verbs: " + ", ".join("%s %d" % kv for kv in verb_counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
