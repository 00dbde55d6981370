/* SPDX-License-Identifier: MIT */
/*
 * gendump: a reproducible, PostgreSQL plain-text-dump-like data set for the
 * chunking and dedup benchmarks: the database of an online comic-book shop.
 *
 *   gendump --size-mb N --day D [--seed S] [--order pk|physical] [--stats]
 *
 * writes the dump of day D to stdout: a pg_dump style header (SETs, DDL),
 * one `COPY public.<table> (...) FROM stdin;` block per table in pg_dump's
 * order (alphabetical), tab-separated rows, `\.` terminators, sequence
 * values, constraints and indexes.
 *
 * Model. Day 0 is the base, about N MB. Each later day applies one business
 * day to the previous day's state, cumulatively and deterministically from
 * the seed (day D is day D-1 plus day D's changes; generating day D
 * simulates days 1..D, which is cheap).
 *
 * Rows are as wide as a real shop's (~300 bytes on average): customers carry
 * a password hash, preferences (jsonb, with the pull list) and staff notes;
 * issues (the catalogue) the solicitation text, six creators, codes;
 * orders a copy of the shipping address, tracking number, client address
 * and browser; event_log a request id, the browser and a jsonb payload.
 * Most of the dump is data that rarely changes: a year of event log (~40%),
 * five years of orders with their lines and payments (~32%), the catalogue
 * (~23%); customers are ~5%, the stock table ~2%.
 *
 * A day changes about 0.9% of the rows (Wednesday, new comic book day,
 * more), mostly in a few places:
 *   inventory    ~15% of the stock lines (sales, restocks, reservations,
 *                cycle counts): one change per kB of the table
 *   event_log    the day's events appended, the oldest day purged (1 year)
 *   orders       new orders with lines and payments; recent orders walk
 *                pending -> paid -> ... -> delivered over a few days,
 *                payments are captured, refunded within 60 days
 *   issues       new releases entered on Mondays, released on Wednesdays
 *   customers    buyers' loyalty points and last login, a few edits
 * and sparsely everywhere else, as in a production database:
 *   issues       0.08% of the back catalogue (prices, sold-out flags)
 *   orders       0.02% (customer service: corrections, late changes),
 *                0.006% of the lines returned, 0.004% of the payments
 *                disputed
 *   addresses    moves, new and deleted addresses (~0.05%)
 *   erasure      0.005% of the customers a day ask to be forgotten: the
 *                account is anonymised, its addresses deleted, its orders
 *                and events (wherever they are) stripped of personal data
 *
 * --order pk writes every table sorted by primary key (like a dump of
 * clustered tables). --order physical (the default, as pg_dump does) writes
 * the heap order: tables are modelled as slots in 8 kB pages (as many as
 * the table's rows fit); an updated row becomes a new tuple in a free slot
 * of its own page (HOT) or in the first free slot of the table, else at
 * the end; the old slot and deleted rows' slots become reusable after the
 * night's VACUUM, so new rows land mid-table. Day 0 is years into
 * production, not freshly loaded: its heap is in pk order, but tables that
 * see updates carry 10-20% free slots scattered over their pages (what past
 * updates left), and last night's VACUUM freed the rows purged yesterday.
 *
 * State is compact: a row's content is a pure function of (seed, table, pk,
 * update count, day of last change) plus, for rows inserted after day 0,
 * one 64-bit reference word (parent ids) recorded when it was inserted.
 * Per row we keep a 32-bit version word (and pk <-> slot maps in physical
 * mode).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers --------------------------------------------------------- */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void die(const char *what) {
        fprintf(stderr, "gendump: %s\n", what);
        exit(1);
}

static void *xrealloc(void *p, size_t n) {
        void *q = realloc(p, n ? n : 1);
        if (!q)
                die("out of memory");
        return q;
}

static uint64_t g_seed;

static inline uint64_t mix64(uint64_t x) {
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        x ^= x >> 31;
        return x;
}

static inline uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) {
        return mix64(mix64(mix64(g_seed ^ (a * 0x9e3779b97f4a7c15ull)) ^ b) + c);
}

/* wyrand: small and fast. */
typedef struct Rng {
        uint64_t s;
} Rng;

static inline Rng rng3(uint64_t a, uint64_t b, uint64_t c) {
        return (Rng) { hash3(a, b, c) };
}

static inline uint64_t rnext(Rng *r) {
        r->s += 0xa0761d6478bd642full;
        __uint128_t t = (__uint128_t) r->s * (r->s ^ 0xe7037ed1a0b428dbull);
        return (uint64_t) (t >> 64) ^ (uint64_t) t;
}

/* Uniform in [0, n). */
static inline uint32_t rbelow(Rng *r, uint32_t n) {
        return (uint32_t) (((rnext(r) >> 32) * n) >> 32);
}

/* Uniform in [0, 1). */
static inline double runit(Rng *r) {
        return (double) (rnext(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* floor(x) plus one with probability frac(x): an integer with mean x. */
static uint32_t rcount(Rng *r, double x) {
        if (x <= 0)
                return 0;
        uint32_t n = (uint32_t) x;
        return n + (runit(r) < x - n);
}

/* ---- word lists -------------------------------------------------------------- */

typedef struct Str {
        const char *s;
        uint32_t n;
} Str;

typedef struct List {
        const char *src; /* '|' separated */
        Str *v;
        uint32_t n;
} List;

static List L_FIRST = { "James|Mary|Robert|Patricia|John|Jennifer|Michael|Linda|David|Elizabeth|William|Barbara|"
        "Richard|Susan|Joseph|Jessica|Thomas|Sarah|Christopher|Karen|Charles|Lisa|Daniel|Nancy|Matthew|Betty|"
        "Anthony|Sandra|Mark|Margaret|Donald|Ashley|Steven|Kimberly|Andrew|Emily|Paul|Donna|Joshua|Michelle|"
        "Kenneth|Carol|Kevin|Amanda|Brian|Melissa|Timothy|Deborah|Ronald|Stephanie|George|Rebecca|Jason|Sharon|"
        "Edward|Laura|Jeffrey|Cynthia|Ryan|Dorothy|Jacob|Amy|Nicholas|Kathleen|Gary|Angela|Eric|Shirley|"
        "Jonathan|Emma|Stephen|Brenda|Larry|Pamela|Justin|Nicole|Scott|Anna|Brandon|Samantha|Benjamin|Katherine|"
        "Samuel|Christine|Gregory|Debra|Alexander|Rachel|Patrick|Carolyn|Frank|Janet|Raymond|Maria|Jack|Olivia|"
        "Dennis|Heather|Jerry|Helen|Tyler|Catherine|Aaron|Diane|Jose|Julie|Adam|Victoria|Nathan|Joyce|Henry|"
        "Lauren|Zachary|Kelly|Douglas|Christina|Peter|Ruth|Kyle|Joan|Noah|Virginia|Ethan|Judith|Jeremy|Evelyn|"
        "Walter|Hannah|Christian|Andrea|Keith|Megan|Roger|Cheryl|Terry|Jacqueline|Austin|Madison|Sean|Teresa|"
        "Gerald|Abigail|Carl|Sophia|Harold|Martha|Dylan|Sara|Arthur|Gloria|Lawrence|Janice|Jordan|Kathryn|"
        "Jesse|Ann|Bryan|Isabella|Billy|Judy|Bruce|Charlotte|Gabriel|Julia|Joe|Grace|Logan|Amber|Alan|Alice|"
        "Juan|Jean|Albert|Denise|Willie|Frances|Elijah|Danielle|Wayne|Marilyn|Randy|Natalie|Vincent|Beverly|"
        "Mason|Diana|Roy|Brittany|Ralph|Theresa|Bobby|Kayla|Russell|Alexis|Bradley|Doris|Philip|Lori|Eugene|"
        "Tiffany|Hiroshi|Yuki|Priya|Arjun|Mei|Wei|Sofia|Mateo|Lucas|Chloe|Liam|Mia|Kenji|Aiko|Lars|Ingrid|"
        "Pierre|Camille|Giulia|Marco|Sven|Astrid|Diego|Lucia|Omar|Fatima|Kwame|Amara|Dmitri|Anya" };

static List L_LAST = { "Smith|Johnson|Williams|Brown|Jones|Garcia|Miller|Davis|Rodriguez|Martinez|Hernandez|Lopez|"
        "Gonzalez|Wilson|Anderson|Thomas|Taylor|Moore|Jackson|Martin|Lee|Perez|Thompson|White|Harris|Sanchez|"
        "Clark|Ramirez|Lewis|Robinson|Walker|Young|Allen|King|Wright|Scott|Torres|Nguyen|Hill|Flores|Green|"
        "Adams|Nelson|Baker|Hall|Rivera|Campbell|Mitchell|Carter|Roberts|Gomez|Phillips|Evans|Turner|Diaz|"
        "Parker|Cruz|Edwards|Collins|Reyes|Stewart|Morris|Morales|Murphy|Cook|Rogers|Gutierrez|Ortiz|Morgan|"
        "Cooper|Peterson|Bailey|Reed|Kelly|Howard|Ramos|Kim|Cox|Ward|Richardson|Watson|Brooks|Chavez|Wood|"
        "James|Bennett|Gray|Mendoza|Ruiz|Hughes|Price|Alvarez|Castillo|Sanders|Patel|Myers|Long|Ross|Foster|"
        "Jimenez|Powell|Jenkins|Perry|Russell|Sullivan|Bell|Coleman|Butler|Henderson|Barnes|Gonzales|Fisher|"
        "Vasquez|Simmons|Romero|Jordan|Patterson|Alexander|Hamilton|Graham|Reynolds|Griffin|Wallace|Moreno|"
        "West|Cole|Hayes|Bryant|Herrera|Gibson|Ellis|Tran|Medina|Aguilar|Stevens|Murray|Ford|Castro|Marshall|"
        "Owens|Harrison|Fernandez|McDonald|Woods|Washington|Kennedy|Wells|Vargas|Henry|Chen|Freeman|Webb|"
        "Tucker|Guzman|Burns|Crawford|Olson|Simpson|Porter|Hunter|Gordon|Mendez|Silva|Shaw|Snyder|Mason|Dixon|"
        "Munoz|Hunt|Hicks|Holmes|Palmer|Wagner|Black|Robertson|Boyd|Rose|Stone|Salazar|Fox|Warren|Mills|Meyer|"
        "Rice|Schmidt|Garza|Daniels|Ferguson|Nichols|Stephens|Soto|Weaver|Ryan|Gardner|Payne|Grant|Dunn|"
        "Kowalski|Nakamura|Tanaka|Yamamoto|Novak|Larsen|Johansson|Dubois|Rossi|Ferrari|Schneider|Fischer|"
        "Weber|O'Brien|O'Connor|Byrne|Singh|Kumar|Shah|Ali|Khan|Okafor|Mensah|Ivanov|Petrov" };

static List L_DOMAIN = { "gmail.com|gmail.com|gmail.com|gmail.com|gmail.com|gmail.com|yahoo.com|yahoo.com|"
        "hotmail.com|hotmail.com|outlook.com|outlook.com|icloud.com|icloud.com|aol.com|proton.me|comcast.net|"
        "verizon.net|att.net|me.com|live.com|msn.com|gmx.de|web.de|btinternet.com|shaw.ca|rogers.com|mail.com|"
        "fastmail.com|sbcglobal.net" };

static List L_STREET = { "Main|Oak|Pine|Maple|Cedar|Elm|Washington|Lake|Hill|Park|Sunset|Lincoln|Jackson|Church|"
        "River|Highland|Madison|Walnut|Spruce|Willow|Meadow|Forest|Ridge|Chestnut|Franklin|Jefferson|Adams|"
        "Birch|Dogwood|Magnolia|Center|Mill|Spring|Union|Broad|Market|Water|High|Prospect|Valley|Grove|Summit|"
        "Locust|Cherry|Hickory|Sycamore|Laurel|Poplar|Aspen|Juniper|Bayview|Harbor|Orchard|Fairview|Woodland|"
        "Cypress|Evergreen|Colonial|Heritage|Liberty|2nd|3rd|4th|5th|Lakeview|Railroad|Kings|Queen|Mountain" };

static List L_SUFFIX = { "Street|Street|Street|Avenue|Avenue|Road|Boulevard|Lane|Drive|Drive|Court|Way|Place|"
        "Terrace|Circle|Parkway" };

/* city|region|postal prefix|country, four fields per entry. */
static List L_CITY = { "New York|NY|100|US|Brooklyn|NY|112|US|Buffalo|NY|142|US|Los Angeles|CA|900|US|"
        "San Diego|CA|921|US|San Francisco|CA|941|US|Oakland|CA|946|US|Sacramento|CA|958|US|San Jose|CA|951|US|"
        "Chicago|IL|606|US|Evanston|IL|602|US|Houston|TX|770|US|Austin|TX|787|US|Dallas|TX|752|US|"
        "San Antonio|TX|782|US|Phoenix|AZ|850|US|Tucson|AZ|857|US|Philadelphia|PA|191|US|Pittsburgh|PA|152|US|"
        "Columbus|OH|432|US|Cleveland|OH|441|US|Cincinnati|OH|452|US|Indianapolis|IN|462|US|Seattle|WA|981|US|"
        "Spokane|WA|992|US|Portland|OR|972|US|Eugene|OR|974|US|Denver|CO|802|US|Boulder|CO|803|US|"
        "Boston|MA|021|US|Worcester|MA|016|US|Nashville|TN|372|US|Memphis|TN|381|US|Detroit|MI|482|US|"
        "Ann Arbor|MI|481|US|Minneapolis|MN|554|US|St. Paul|MN|551|US|Milwaukee|WI|532|US|Madison|WI|537|US|"
        "Kansas City|MO|641|US|St. Louis|MO|631|US|Atlanta|GA|303|US|Savannah|GA|314|US|Miami|FL|331|US|"
        "Orlando|FL|328|US|Tampa|FL|336|US|Gainesville|FL|326|US|Charlotte|NC|282|US|Raleigh|NC|276|US|"
        "Durham|NC|277|US|Baltimore|MD|212|US|Richmond|VA|232|US|Arlington|VA|222|US|Salt Lake City|UT|841|US|"
        "Las Vegas|NV|891|US|Albuquerque|NM|871|US|New Orleans|LA|701|US|Louisville|KY|402|US|Omaha|NE|681|US|"
        "Providence|RI|029|US|Burlington|VT|054|US|Honolulu|HI|968|US|Anchorage|AK|995|US|Newark|NJ|071|US|"
        "Hartford|CT|061|US|Toronto|ON|M5V|CA|Vancouver|BC|V6B|CA|Montreal|QC|H2X|CA|Calgary|AB|T2P|CA|"
        "Ottawa|ON|K1P|CA|London|England|SW1|GB|Manchester|England|M14|GB|Bristol|England|BS1|GB|"
        "Glasgow|Scotland|G12|GB|Berlin|BE|101|DE|Hamburg|HH|203|DE|Munich|BY|803|DE|Cologne|NW|506|DE" };

static List L_UNIT = { "Apt 1A|Apt 2B|Apt 3C|Apt 4D|Apt 5E|Apt 12|Apt 101|Apt 204|Apt 310|Unit 7|Unit 15|"
        "Suite 200|Suite 410|Floor 2|#3|#14|Bldg 5|PO Box 118|PO Box 2207|c/o Front Desk" };

static List L_PUBLISHER = { "Marvel|Marvel|Marvel|Marvel|DC|DC|DC|DC|Image|Image|Image|Dark Horse|Dark Horse|IDW|"
        "BOOM! Studios|BOOM! Studios|Dynamite|Oni Press|Titan Comics|Fantagraphics|Drawn & Quarterly|Archie|"
        "Valiant|Vault|AfterShock|AWA Studios|Ahoy Comics|Mad Cave|Scout Comics|Abrams ComicArts|Viz Media|"
        "Kodansha|Yen Press|Seven Seas|Humanoids|Top Shelf|Zenescope|Rebellion" };

static List L_ADJ = { "Amazing|Astonishing|Uncanny|Savage|Dark|Crimson|Silver|Golden|Iron|Midnight|Infinite|"
        "Eternal|Cosmic|Mighty|Invincible|Wild|Secret|Lost|Forgotten|Broken|Shadow|Electric|Atomic|Radiant|"
        "Hollow|Scarlet|Violet|Frozen|Burning|Last|First|Black|White|Red|Blue|Green|Ultimate|Spectacular|"
        "Sensational|Fantastic|Strange|Weird|Haunted|Wicked|Neon|Steel|Stone|Star|Moon|Night|Ghost|Phantom|"
        "Rogue|Outlaw|Brave|Silent|Hidden|Immortal|Savage|Tiny|Ancient|Modern" };

static List L_NOUN = { "Sentinel|Knight|Legion|Guardians|Avengers|Patrol|Squad|Titans|Wanderer|Ranger|Hunter|"
        "Witch|Wizard|Detective|Samurai|Ninja|Pirates|Harbor|City|Empire|Kingdom|Frontier|Horizon|Odyssey|"
        "Chronicles|Saga|Tales|Adventures|Mysteries|Legends|Nomad|Specter|Oracle|Phoenix|Dragon|Wolf|Raven|"
        "Falcon|Spider|Hawk|Tiger|Panther|Cobra|Scorpion|Machine|Engine|Protocol|Paradox|Nexus|Vortex|Storm|"
        "Thunder|Lightning|Eclipse|Nebula|Galaxy|Planet|Orbit|Comet|Abyss|Crown|Throne|Blade|Fist|Heart" };

static List L_WORD = { "the|the|the|the|a|a|an|of|of|of|in|in|to|to|and|and|and|with|as|for|from|on|their|his|"
        "her|new|old|final|epic|shocking|deadly|secret|team|hero|heroes|villain|city|world|war|battle|fight|"
        "return|returns|must|face|faces|discover|discovers|truth|past|future|enemy|ally|allies|power|powers|"
        "rise|fall|dark|light|legacy|mystery|crisis|event|chapter|arc|begins|continues|concludes|ending|twist|"
        "betrayal|family|friend|friends|rival|mission|team-up|showdown|origin|story|tale|journey|quest|threat|"
        "invasion|army|kingdom|empire|galaxy|universe|multiverse|dimension|time|space|reality|destiny|fate|"
        "choice|sacrifice|revenge|justice|hope|fear|rage|love|loss|night|blood|fire|ice|storm|shadow|ghost|"
        "monster|machine|robot|alien|god|gods|demon|magic|spell|curse|artifact|weapon|sword|shield|crown|"
        "throne|ruins|streets|rooftops|underground|station|ship|fleet|lab|school|academy|squad|guild|cult|"
        "syndicate|gang|mob|crime|case|detective|killer|hunt|chase|escape|heist|trap|secrets|lies|answers|"
        "questions|everything|nothing|forever|tonight|again|alone|together|beyond|within|against|before|after|"
        "until|unleashed|revealed|reborn|unbound|awakens|strikes|collide|falls|rises|burns|breaks|changes|"
        "explodes|cover|variant|artist|writer|acclaimed|bestselling|award-winning|superstar|fan-favorite|"
        "creators|issue|series|saga|miniseries|but|when|who|what|why|can|will|is|are|not|all|one|two|three" };

static List L_UA = { "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36|"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36|"
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15|"
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1|"
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1|"
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.6422.113 Mobile Safari/537.36|"
        "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.179 Mobile Safari/537.36|"
        "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0|"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0|"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80|"
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1|"
        "ComicShopApp/3.8.2 (iOS 17.5; iPhone15,2)|ComicShopApp/3.8.1 (Android 14; SM-G991B)|"
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36" };

static List L_SEARCH = { "batman|spider-man|x-men|saga|invincible|one piece|chainsaw man|sandman|hellboy|"
        "transformers|tmnt|walking dead|absolute batman|ultimate spider-man|jujutsu kaisen|berserk|watchmen|"
        "wonder woman|superman|deadpool|venom|daredevil|fantastic four|the boys|something is killing the children|"
        "monstress|paper girls|bone|usagi yojimbo|star wars|dune|conan|free comic book day|variant covers|"
        "graphic novels|manga box set|omnibus|absolute edition|cgc 9.8|first appearance" };

static List L_REFERRER = { "https://www.google.com/|https://www.google.com/|https://www.google.com/|"
        "https://www.bing.com/|https://duckduckgo.com/|https://www.reddit.com/r/comicbooks/|"
        "https://www.instagram.com/|https://t.co/|https://www.facebook.com/|https://news.ycombinator.com/|"
        "https://www.youtube.com/|https://league-of-comic-geeks.com/" };

static List L_NOTE = { "Please leave at the back door|Gift - no invoice please|Bag and board every issue|"
        "Hold for pickup on Saturday|Ship with the pull list|Call before delivery|Do not bend|"
        "Combine with previous order|Signed copy requested|Birthday present, gift wrap please" };

static List L_COUPON = { "WELCOME10|NCBD5|SUMMER24|FCBD2024|PULLLIST15|LOYALTY20|FREESHIP|HALLOWEEN|"
        "BLACKFRIDAY|SPRINGSALE" };

static List L_GENRE = { "superhero|superhero|superhero|horror|sci-fi|fantasy|crime|noir|romance|humor|manga|"
        "western|war|slice-of-life|all-ages|action|mystery|historical|anthology|biography" };

static List L_SHIPPING = { "USPS Media Mail|USPS Media Mail|USPS Ground Advantage|USPS Priority Mail|UPS Ground|"
        "UPS Ground|FedEx Home Delivery|DHL Express Worldwide|Canada Post Expedited|Royal Mail Tracked 48" };

static List L_STAFFNOTE = { "Pull box customer, holds everything for Saturday pickup|"
        "Prefers NM copies only; check spines before bagging|Collects CGC slabs, call when 9.8s come in|"
        "Wants all 1:25 incentive variants of the pull list|Teacher, gets the educator discount|"
        "Disputed a charge in 2022, require signature on delivery|Local artist, sells prints at the counter|"
        "Ships monthly in one box, do not split the pull list|Store credit balance kept on the paper card|"
        "Buys full runs for resale, limit one per customer on hot books|Asked us to hold back issues for the kids|"
        "Long-time regular since the old location on Main Street" };

static List L_INSTRUCTIONS = { "Leave with the front desk|Side door, ring twice|Do not leave in the rain, use the porch box|"
        "Deliver to the mail room|Gate code 4421#|Leave behind the planter|Call on arrival, buzzer is broken|"
        "Office hours 9-5 only|Signature required|Please do not fold or bend" };

static List L_COMPANY = { "Acme Corp|Initech|Globex LLC|Stark Industries Fan Club|Riverside Public Library|"
        "Lincoln High School|Northside Community Center|Hooli|Vandelay Industries|Wayne Enterprises Book Club" };

static List L_CARD = { "visa|visa|visa|visa|mastercard|mastercard|mastercard|amex|discover|jcb" };

static List L_LOCALE = { "en-US|en-US|en-US|en-US|en-US|en-CA|en-GB|es-US|fr-CA|de-DE" };

static List L_SOLICIT = { "Don't miss the start of a brand-new arc!|A perfect jumping-on point for new readers!|"
        "The critically acclaimed series continues!|Collects the complete first story arc.|"
        "Featuring a bonus backup story and variant cover gallery.|The event of the summer starts here!|"
        "Nothing will ever be the same!|The fan-favorite creative team returns!|"
        "Celebrate the anniversary with an extra-sized issue!|Part of the crossover everyone is talking about.|"
        "Now with an all-new foil logo.|Retailers: this issue is returnable if ordered by FOC.|"
        "Printed on premium stock with a cardstock cover.|Includes the original pitch document and sketches.|"
        "The epic conclusion you have been waiting for!|A standalone story, perfect for new readers." };

static List *const LISTS[] = {
        &L_FIRST, &L_LAST, &L_DOMAIN, &L_STREET, &L_SUFFIX, &L_CITY, &L_UNIT, &L_PUBLISHER,
        &L_ADJ, &L_NOUN, &L_WORD, &L_UA, &L_SEARCH, &L_REFERRER, &L_NOTE, &L_COUPON,
        &L_GENRE, &L_SHIPPING, &L_STAFFNOTE, &L_INSTRUCTIONS, &L_COMPANY, &L_CARD, &L_LOCALE, &L_SOLICIT,
};

/* Lower-case letters only, for email addresses (O'Brien -> obrien). */
static Str *g_first_lc, *g_last_lc;

static Str *lower_copy(const List *l) {
        Str *v = xrealloc(NULL, l->n * sizeof *v);
        for (uint32_t i = 0; i < l->n; i++) {
                char *s = xrealloc(NULL, l->v[i].n + 1);
                uint32_t k = 0;
                for (uint32_t j = 0; j < l->v[i].n; j++) {
                        char ch = l->v[i].s[j];
                        if (ch >= 'A' && ch <= 'Z')
                                s[k++] = (char) (ch - 'A' + 'a');
                        else if (ch >= 'a' && ch <= 'z')
                                s[k++] = ch;
                }
                s[k] = 0;
                v[i] = (Str) { s, k };
        }
        return v;
}

static void lists_init(void) {
        for (size_t i = 0; i < ARRAY_SIZE(LISTS); i++) {
                List *l = LISTS[i];
                uint32_t n = 1;
                for (const char *p = l->src; *p; p++)
                        n += *p == '|';
                l->v = xrealloc(NULL, n * sizeof *l->v);
                l->n = 0;
                const char *s = l->src;
                for (;;) {
                        const char *e = strchr(s, '|');
                        size_t len = e ? (size_t) (e - s) : strlen(s);
                        l->v[l->n++] = (Str) { s, (uint32_t) len };
                        if (!e)
                                break;
                        s = e + 1;
                }
        }
        g_first_lc = lower_copy(&L_FIRST);
        g_last_lc = lower_copy(&L_LAST);
}

/* ---- output -------------------------------------------------------------------- */

#define OBUF_SIZE (1u << 20)
#define ROW_MAX 4096 /* no row is longer */

static char g_obuf[OBUF_SIZE];
static size_t g_olen;
static uint64_t g_total_bytes;

static void out_flush(void) {
        size_t off = 0;
        while (off < g_olen) {
                ssize_t w = write(STDOUT_FILENO, g_obuf + off, g_olen - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        fprintf(stderr, "gendump: write to stdout failed: %s\n", strerror(errno));
                        exit(1);
                }
                off += (size_t) w;
        }
        g_total_bytes += g_olen;
        g_olen = 0;
}

/* Room for one row; returns the write pointer. */
static inline char *out_begin(void) {
        if (g_olen + ROW_MAX > OBUF_SIZE)
                out_flush();
        return g_obuf + g_olen;
}

static inline void out_end(char *o) {
        g_olen = (size_t) (o - g_obuf);
}

static void out_text(const char *s) {
        size_t n = strlen(s);
        while (n) {
                char *o = out_begin();
                size_t k = n < ROW_MAX ? n : ROW_MAX;
                memcpy(o, s, k);
                out_end(o + k);
                s += k;
                n -= k;
        }
}

static void out_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out_printf(const char *fmt, ...) {
        char *o = out_begin();
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o, ROW_MAX, fmt, ap);
        va_end(ap);
        if (n < 0 || n >= ROW_MAX)
                die("internal error: formatted text too long");
        out_end(o + n);
}

static inline char *put(char *o, const char *s, size_t n) {
        memcpy(o, s, n);
        return o + n;
}
#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline char *put_str(char *o, Str s) {
        return put(o, s.s, s.n);
}

static inline char *put_pick(char *o, const List *l, Rng *r) {
        return put_str(o, l->v[rbelow(r, l->n)]);
}

static const char DIGITS2[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";

static inline char *put_u(char *o, uint64_t v) {
        char tmp[24];
        char *e = tmp + sizeof tmp, *p = e;
        while (v >= 100) {
                p -= 2;
                memcpy(p, DIGITS2 + 2 * (v % 100), 2);
                v /= 100;
        }
        if (v >= 10) {
                p -= 2;
                memcpy(p, DIGITS2 + 2 * v, 2);
        } else
                *--p = (char) ('0' + v);
        return put(o, p, (size_t) (e - p));
}

static inline char *put_i(char *o, int64_t v) {
        if (v < 0) {
                *o++ = '-';
                return put_u(o, (uint64_t) -v);
        }
        return put_u(o, (uint64_t) v);
}

/* Zero-padded to width digits. */
static inline char *put_uw(char *o, uint64_t v, int width) {
        for (int i = width - 1; i >= 0; i--) {
                o[i] = (char) ('0' + v % 10);
                v /= 10;
        }
        return o + width;
}

/* cents as numeric(10,2) */
static inline char *put_money(char *o, int64_t cents) {
        if (cents < 0) {
                *o++ = '-';
                cents = -cents;
        }
        o = put_u(o, (uint64_t) cents / 100);
        *o++ = '.';
        return put(o, DIGITS2 + 2 * (cents % 100), 2);
}

static inline char *put_hex(char *o, uint64_t v, int n) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < n; i++) {
                o[i] = hex[v & 15];
                v >>= 4;
        }
        return o + n;
}

#define TAB(o) (*(o)++ = '\t')
#define PUT_NULL(o) PUTS(o, "\\N")

/* ---- calendar -------------------------------------------------------------------- */

/* Days are counted from 1940-01-01; times are seconds since then, UTC. */
#define NDAYS 40000

static char g_dates[NDAYS][10];
static int32_t g_day0; /* 2024-06-03, a Monday: day 0 of the simulation */

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
        y -= m <= 2;
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned) (y - era * 400);
        const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t) doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d) {
        z += 719468;
        const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        const unsigned doe = (unsigned) (z - era * 146097);
        const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        const unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int) (yoe + era * 400 + (*m <= 2));
}

static void calendar_init(void) {
        const int64_t base = days_from_civil(1940, 1, 1);
        for (int i = 0; i < NDAYS; i++) {
                int y;
                unsigned m, d;
                civil_from_days(base + i, &y, &m, &d);
                char *o = g_dates[i];
                o = put_uw(o, (uint64_t) y, 4);
                *o++ = '-';
                o = put_uw(o, m, 2);
                *o++ = '-';
                put_uw(o, d, 2);
        }
        g_day0 = (int32_t) (days_from_civil(2024, 6, 3) - base);
}

/* 0 = Monday */
static int weekday(int32_t day) {
        return (int) (((days_from_civil(1940, 1, 1) + day) % 7 + 7 + 3) % 7);
}

static inline char *put_date(char *o, int32_t day) {
        if (day < 0 || day >= NDAYS)
                die("internal error: date out of range");
        return put(o, g_dates[day], 10);
}

static inline char *put_year(char *o, int32_t day) {
        return put(o, g_dates[day], 4);
}

/* timestamp with time zone as PostgreSQL prints it in UTC. */
static inline char *put_ts(char *o, int64_t t, uint32_t usec) {
        int32_t day = (int32_t) (t / 86400);
        uint32_t s = (uint32_t) (t % 86400);
        o = put_date(o, day);
        *o++ = ' ';
        o = put(o, DIGITS2 + 2 * (s / 3600), 2);
        *o++ = ':';
        o = put(o, DIGITS2 + 2 * (s / 60 % 60), 2);
        *o++ = ':';
        o = put(o, DIGITS2 + 2 * (s % 60), 2);
        if (usec) {
                char f[6];
                put_uw(f, usec, 6);
                int n = 6;
                while (f[n - 1] == '0')
                        n--;
                *o++ = '.';
                o = put(o, f, (size_t) n);
        }
        return PUTS(o, "+00");
}

/* ---- tables and their state ------------------------------------------------------- */

enum {
        T_ADDRESSES,
        T_CUSTOMERS,
        T_EVENT_LOG,
        T_INVENTORY,
        T_ISSUES,
        T_ORDER_ITEMS,
        T_ORDERS,
        T_PAYMENTS,
        T_SERIES,
        T_COUNT,
};

/* Version word of a row: bit 31 deleted; bits 16..30 simulation day of the
 * last change (insert or update; 0 for untouched base rows); bit 15 erased
 * (personal data removed on request); bits 0..14 number of updates. */
#define V_DEAD 0x80000000u
#define V_ERASED 0x8000u
#define V_COUNT(v) ((v) & 0x7fffu)
#define V_DAY(v) ((int32_t) (((v) >> 16) & 0x7fffu))

/* A heap page is one 64-bit word of the free map; a table uses the first
 * spp slots of each (an 8 kB page holds 8168 / (tuple + 28) tuples). */
#define SLOTS_PER_PAGE 64

typedef struct Table {
        const char *name;
        const char *cols;
        int span;            /* base rows were created over the span days before day 0 */
        uint32_t nbase;      /* rows on day 0: pks 1..nbase */
        uint32_t n;          /* pks handed out */
        uint32_t cap;
        uint32_t *ver;       /* [pk - 1] */
        uint64_t *xref;      /* [pk - nbase - 1]: references of rows inserted after day 0 */
        uint32_t *day_first; /* [d]: first pk inserted on day d (d >= 1) */
        /* --order physical: heap slots in 64-slot pages */
        uint32_t *slot;      /* [pk - 1] */
        uint32_t *heap;      /* [slot]: pk, 0 = free */
        uint64_t *freemap;   /* bit set: slot free and vacuumed */
        uint32_t spp;        /* tuples per 8 kB page (at most SLOTS_PER_PAGE) */
        uint32_t bloat;      /* free slots on day 0, per 100000 slots of the heap */
        uint32_t nslots, slotcap, cursor;
        uint32_t *dead;      /* slots freed today, reusable after VACUUM */
        uint32_t ndead, deadcap;
        /* stats */
        uint64_t ins, upd, del, rows, bytes;
} Table;

static Table g_t[T_COUNT] = {
        [T_ADDRESSES] = { .name = "addresses",
                .cols = "id, customer_id, kind, recipient, company, line1, line2, city, region, postal_code, country, latitude, longitude, phone, delivery_instructions, is_default, created_at, updated_at",
                .span = 1900, .spp = 38, .bloat = 10000 },
        [T_CUSTOMERS] = { .name = "customers",
                .cols = "id, username, first_name, last_name, email, password_hash, phone, birth_date, created_at, last_login_at, loyalty_points, order_count, lifetime_spend, status, marketing_opt_in, favorite_publisher, preferences, notes, updated_at",
                .span = 1900, .spp = 16, .bloat = 15000 },
        [T_EVENT_LOG] = { .name = "event_log",
                .cols = "id, occurred_at, customer_id, session_id, request_id, kind, entity, entity_id, ip, user_agent, payload",
                .span = 365, .spp = 21, .bloat = 0 },
        [T_INVENTORY] = { .name = "inventory",
                .cols = "id, issue_id, sku, location, condition, qty_on_hand, qty_reserved, reorder_level, unit_cost, supplier, bin, last_counted_at, updated_at",
                .span = 1950, .spp = 53, .bloat = 20000 },
        [T_ISSUES] = { .name = "issues",
                .cols = "id, series_id, issue_number, variant, title, cover_date, release_date, foc_date, cover_price, upc, isbn, order_code, writer, artist, colorist, letterer, cover_artist, editor, page_count, format, age_rating, weight_grams, status, description, variant_description, updated_at",
                .span = 1950, .spp = 10, .bloat = 20000 },
        [T_ORDER_ITEMS] = { .name = "order_items",
                .cols = "id, order_id, issue_id, sku, title, condition, quantity, unit_price, discount, tax, line_total, returned_qty, created_at",
                .span = 1800, .spp = 59, .bloat = 10 },
        [T_ORDERS] = { .name = "orders",
                .cols = "id, customer_id, shipping_address_id, status, placed_at, updated_at, item_count, subtotal, tax, shipping_fee, total, currency, channel, coupon_code, customer_email, ship_name, ship_line1, ship_line2, ship_city, ship_region, ship_postal_code, ship_country, shipping_method, tracking_number, client_ip, user_agent, notes",
                .span = 1800, .spp = 23, .bloat = 15000 },
        [T_PAYMENTS] = { .name = "payments",
                .cols = "id, order_id, provider, provider_ref, amount, currency, status, card_brand, card_last4, card_exp, created_at, captured_at, failure_reason, metadata",
                .span = 1800, .spp = 32, .bloat = 15000 },
        [T_SERIES] = { .name = "series",
                .cols = "id, publisher, title, volume, start_year, end_year, status, age_rating, genre, description, created_at, updated_at",
                .span = 1950, .spp = 21, .bloat = 5000 },
};

static bool g_physical = true;
static int g_days;           /* days simulated so far */

/* Children of base parents: pref[p] is the first child pk of parent p,
 * pref[nparent + 1] = nchild + 1. customers -> addresses, orders -> items,
 * issues -> inventory. */
static uint32_t *g_cust_addr, *g_order_items, *g_issue_inv;

/* xref packing for parents inserted after day 0: a | first_child << 32 | nchild << 60 */
static inline uint64_t xref_pack(uint32_t a, uint32_t first, uint32_t n) {
        return (uint64_t) a | (uint64_t) first << 32 | (uint64_t) n << 60;
}
#define XREF_A(x) ((uint32_t) (x))
#define XREF_FIRST(x) ((uint32_t) (((x) >> 32) & 0x0fffffffu))
#define XREF_N(x) ((uint32_t) ((x) >> 60))

static inline uint64_t xref_get(const Table *t, uint32_t pk) {
        return t->xref[pk - t->nbase - 1];
}

static void table_grow(Table *t, uint32_t need) {
        if (need <= t->cap)
                return;
        uint32_t cap = t->cap ? t->cap : 1024;
        while (cap < need)
                cap += cap / 2 + 1024;
        t->ver = xrealloc(t->ver, (size_t) cap * sizeof *t->ver);
        memset(t->ver + t->cap, 0, (size_t) (cap - t->cap) * sizeof *t->ver);
        t->xref = xrealloc(t->xref, (size_t) (cap > t->nbase ? cap - t->nbase : 1) * sizeof *t->xref);
        if (g_physical)
                t->slot = xrealloc(t->slot, (size_t) cap * sizeof *t->slot);
        t->cap = cap;
}

/* ---- heap layout (--order physical) ---------------------------------------------- */

static uint32_t heap_append(Table *t) {
        if (t->nslots % SLOTS_PER_PAGE == t->spp) /* page full: start the next one */
                t->nslots += SLOTS_PER_PAGE - t->spp;
        if (t->nslots == t->slotcap) {
                uint32_t cap = t->slotcap ? t->slotcap + t->slotcap / 2 : 1024;
                cap = (cap + SLOTS_PER_PAGE - 1) / SLOTS_PER_PAGE * SLOTS_PER_PAGE;
                t->heap = xrealloc(t->heap, (size_t) cap * sizeof *t->heap);
                memset(t->heap + t->slotcap, 0, (size_t) (cap - t->slotcap) * sizeof *t->heap);
                t->freemap = xrealloc(t->freemap, (size_t) cap / 64 * sizeof *t->freemap);
                memset(t->freemap + t->slotcap / 64, 0, (size_t) (cap - t->slotcap) / 64 * sizeof *t->freemap);
                t->slotcap = cap;
        }
        return t->nslots++;
}

static inline uint32_t take_bit(uint64_t *w, uint32_t word) {
        unsigned b = (unsigned) __builtin_ctzll(*w);
        *w &= *w - 1;
        return word * 64 + b;
}

/* A slot for a new tuple: the first free one from the FSM cursor on, else
 * a new one at the end of the table. */
static uint32_t heap_alloc(Table *t) {
        uint32_t words = (t->nslots + 63) / 64;
        for (uint32_t w = t->cursor; w < words; w++)
                if (t->freemap[w]) {
                        t->cursor = w;
                        return take_bit(&t->freemap[w], w);
                }
        t->cursor = words;
        return heap_append(t);
}

static void heap_place(Table *t, uint32_t pk, uint32_t s) {
        t->heap[s] = pk;
        t->slot[pk - 1] = s;
}

static void heap_kill(Table *t, uint32_t s) {
        t->heap[s] = 0;
        if (t->ndead == t->deadcap) {
                t->deadcap = t->deadcap ? t->deadcap * 2 : 1024;
                t->dead = xrealloc(t->dead, (size_t) t->deadcap * sizeof *t->dead);
        }
        t->dead[t->ndead++] = s;
}

/* The night's VACUUM: today's dead tuples become free space. */
static void heap_vacuum(Table *t) {
        for (uint32_t i = 0; i < t->ndead; i++)
                t->freemap[t->dead[i] / 64] |= 1ull << (t->dead[i] % 64);
        t->ndead = 0;
        t->cursor = 0;
}

/* ---- row life cycle ----------------------------------------------------------------- */

static inline bool row_alive(const Table *t, uint32_t pk) {
        return pk >= 1 && pk <= t->n && !(t->ver[pk - 1] & V_DEAD);
}

static uint32_t row_insert(Table *t, int d, uint64_t xref) {
        if (t->n >= 0x0fffffffu)
                die("too many rows");
        uint32_t pk = t->n + 1;
        table_grow(t, pk);
        t->n = pk;
        t->ver[pk - 1] = (uint32_t) d << 16;
        t->xref[pk - t->nbase - 1] = xref;
        if (g_physical)
                heap_place(t, pk, heap_alloc(t));
        t->ins++;
        return pk;
}

/* An update: a new version of the row, with the count bumped by inc and
 * flags set. */
static void row_touch(Table *t, int d, uint32_t pk, uint32_t inc, uint32_t flags) {
        if (!row_alive(t, pk))
                return;
        uint32_t v = t->ver[pk - 1], c = V_COUNT(v);
        if (c < 0x7fff)
                c += inc;
        t->ver[pk - 1] = (uint32_t) d << 16 | (v & V_ERASED) | flags | c;
        if (g_physical) {
                /* MVCC: the new version goes to free space on the same page
                 * (a HOT update) if there is any, else where an insert would. */
                uint32_t old = t->slot[pk - 1], w = old / 64, s;
                if (t->freemap[w])
                        s = take_bit(&t->freemap[w], w);
                else
                        s = heap_alloc(t);
                heap_kill(t, old);
                heap_place(t, pk, s);
        }
        t->upd++;
}

static void row_update(Table *t, int d, uint32_t pk) {
        row_touch(t, d, pk, 1, 0);
}

/* Personal data removed (a right-to-erasure request): the row stays, the
 * foreign keys to it too. */
static void row_erase(Table *t, int d, uint32_t pk) {
        if (row_alive(t, pk) && !(t->ver[pk - 1] & V_ERASED))
                row_touch(t, d, pk, 0, V_ERASED);
}

static void row_delete(Table *t, uint32_t pk) {
        if (!row_alive(t, pk))
                return;
        t->ver[pk - 1] |= V_DEAD;
        if (g_physical)
                heap_kill(t, t->slot[pk - 1]);
        t->del++;
}

/* A random live row, or 0. */
static uint32_t row_random(const Table *t, Rng *r) {
        for (int i = 0; i < 8; i++) {
                uint32_t pk = 1 + rbelow(r, t->n);
                if (row_alive(t, pk))
                        return pk;
        }
        return 0;
}

/* A random live row among pks first..n, or 0: the recent rows of t. */
static uint32_t row_random_since(const Table *t, uint32_t first, Rng *r) {
        if (first > t->n)
                return 0;
        for (int i = 0; i < 8; i++) {
                uint32_t pk = first + rbelow(r, t->n - first + 1);
                if (row_alive(t, pk))
                        return pk;
        }
        return 0;
}

/* ---- time of rows ----------------------------------------------------------------- */

/* Simulation day on which pk (> nbase) was inserted. */
static int insert_day(const Table *t, uint32_t pk) {
        int lo = 1, hi = g_days; /* day_first[lo] <= pk */
        while (lo < hi) {
                int mid = (lo + hi + 1) / 2;
                if (t->day_first[mid] <= pk)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        return lo;
}

/* Creation time of a row, seconds since 1940-01-01. Base rows are spread
 * evenly over the span days before day 0 in pk order, rows of day d over
 * that day in pk order; within a day over the shop's hours, 07:00..24:00,
 * with some jitter that keeps the order. */
#define DAY_OPEN (7 * 3600)
#define DAY_HOURS (17 * 3600)

static int64_t day_time(int32_t day, uint64_t lin_sec) {
        return (int64_t) day * 86400 + DAY_OPEN + (int64_t) (lin_sec * DAY_HOURS / 86400);
}

static int64_t created_at(const Table *t, uint32_t pk) {
        uint64_t jitter = hash3((uint64_t) (t - g_t), pk, 5);
        if (pk <= t->nbase) {
                uint64_t total = (uint64_t) t->span * 86400;
                uint64_t lin = (uint64_t) (pk - 1) * total / t->nbase, next = (uint64_t) pk * total / t->nbase;
                uint64_t s = lin % 86400 + (next > lin + 1 ? jitter % (next - lin) : 0);
                return day_time(g_day0 - t->span + (int32_t) (lin / 86400), s < 86400 ? s : 86399);
        }
        int d = insert_day(t, pk);
        uint32_t first = t->day_first[d], next = d < g_days ? t->day_first[d + 1] : t->n + 1;
        uint64_t lin = (uint64_t) (pk - first) * 86400 / (next - first);
        uint64_t lnext = (uint64_t) (pk + 1 - first) * 86400 / (next - first);
        return day_time(g_day0 + d, lin + (lnext > lin + 1 ? jitter % (lnext - lin) : 0));
}

static int32_t created_day(const Table *t, uint32_t pk) {
        if (pk <= t->nbase)
                return (int32_t) (created_at(t, pk) / 86400);
        return g_day0 + insert_day(t, pk);
}

/* Number of base rows of t that existed at time ts (for references from
 * base rows to rows created before them). */
static uint32_t base_count_at(const Table *t, int64_t ts) {
        int64_t day = ts / 86400 - (g_day0 - t->span), sec = ts % 86400 - DAY_OPEN;
        if (day < 0)
                return 1;
        sec = sec < 0 ? 0 : sec >= DAY_HOURS ? 86399 : sec * 86400 / DAY_HOURS;
        uint64_t n = (uint64_t) (day * 86400 + sec) * t->nbase / ((uint64_t) t->span * 86400);
        return n < 1 ? 1 : n > t->nbase ? t->nbase : (uint32_t) n;
}

/* Time of the last change of a row changed on simulation day vday. */
static int64_t change_time(int32_t vday, Rng *r) {
        return (int64_t) (g_day0 + vday) * 86400 + 6 * 3600 + rbelow(r, 18 * 3600);
}

/* ---- parent/child maps --------------------------------------------------------------- */

/* weights[k]: how often a parent has min + k children; parents from
 * first_new on use weights_new. */
static uint32_t *make_children(Rng *r, uint32_t nparent, uint32_t min, const uint8_t *weights,
                               const uint8_t *weights_new, uint32_t first_new, size_t nw) {
        uint32_t *pref = xrealloc(NULL, ((size_t) nparent + 2) * sizeof *pref);
        uint32_t next = 1;
        for (uint32_t p = 1; p <= nparent; p++) {
                const uint8_t *w = p >= first_new ? weights_new : weights;
                uint32_t total = 0;
                for (size_t i = 0; i < nw; i++)
                        total += w[i];
                pref[p] = next;
                uint32_t x = rbelow(r, total), k = 0;
                while (x >= w[k]) {
                        x -= w[k];
                        k++;
                }
                next += min + k;
        }
        pref[0] = 1;
        pref[nparent + 1] = next;
        return pref;
}

/* Parent of base child c: the largest p with pref[p] <= c. */
static uint32_t child_parent(const uint32_t *pref, uint32_t nparent, uint32_t c) {
        uint32_t lo = 1, hi = nparent;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo + 1) / 2;
                if (pref[mid] <= c)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        return lo;
}

static uint32_t address_customer(uint32_t a) {
        const Table *t = &g_t[T_ADDRESSES];
        if (a <= t->nbase)
                return child_parent(g_cust_addr, g_t[T_CUSTOMERS].nbase, a);
        return XREF_A(xref_get(t, a));
}

static uint32_t customer_address(uint32_t c) {
        const Table *t = &g_t[T_CUSTOMERS];
        if (c <= t->nbase)
                return g_cust_addr[c];
        return XREF_FIRST(xref_get(t, c));
}

static uint32_t item_order(uint32_t i) {
        const Table *t = &g_t[T_ORDER_ITEMS];
        if (i <= t->nbase)
                return child_parent(g_order_items, g_t[T_ORDERS].nbase, i);
        return XREF_A(xref_get(t, i));
}

static void order_items_range(uint32_t o, uint32_t *first, uint32_t *n) {
        const Table *t = &g_t[T_ORDERS];
        if (o <= t->nbase) {
                *first = g_order_items[o];
                *n = g_order_items[o + 1] - g_order_items[o];
        } else {
                uint64_t x = xref_get(t, o);
                *first = XREF_FIRST(x);
                *n = XREF_N(x);
        }
}

static uint32_t inventory_issue(uint32_t v) {
        const Table *t = &g_t[T_INVENTORY];
        if (v <= t->nbase)
                return child_parent(g_issue_inv, g_t[T_ISSUES].nbase, v);
        return XREF_A(xref_get(t, v));
}

static void issue_inventory_range(uint32_t i, uint32_t *first, uint32_t *n) {
        const Table *t = &g_t[T_ISSUES];
        if (i <= t->nbase) {
                *first = g_issue_inv[i];
                *n = g_issue_inv[i + 1] - g_issue_inv[i];
        } else {
                uint64_t x = xref_get(t, i);
                *first = XREF_FIRST(x);
                *n = XREF_N(x);
        }
}

/* ---- derived values shared by several tables ----------------------------------------- */

/* Per-entity random streams: salt 0 is the immutable part of a row. */
#define IMM 0xffffffffull

static const uint16_t PRICES[] = { 399, 399, 399, 499, 499, 499, 499, 599, 599, 699, 799, 999, 1299,
                                   1499, 1699, 1999, 2499, 2999, 3999, 4999, 7500, 12500 };

static uint32_t issue_price(uint32_t i) {
        Rng r = rng3(T_ISSUES, i, IMM);
        return PRICES[rbelow(&r, ARRAY_SIZE(PRICES))];
}

/* The Wednesday (New Comic Book Day) after the issue was entered. */
static int32_t issue_release(uint32_t i) {
        int32_t day = created_day(&g_t[T_ISSUES], i);
        return day + (9 - weekday(day)) % 7;
}

static uint32_t issue_series(uint32_t i) {
        const Table *t = &g_t[T_ISSUES];
        if (i > t->nbase)
                return XREF_A(xref_get(t, i));
        Rng r = rng3(T_ISSUES, i, 1);
        uint32_t n = base_count_at(&g_t[T_SERIES], created_at(t, i));
        /* most issues belong to recent, running series */
        uint32_t back = (uint32_t) (n * runit(&r) * runit(&r));
        return n - back;
}

/* An issue sold at time ts, among n issues existing then: new releases sell most. */
static uint32_t pick_sold_issue(Rng *r, uint32_t n) {
        double u = runit(r);
        uint32_t back = (uint32_t) (n * u * u * u * u);
        return back >= n ? 1 : n - back;
}

static uint32_t item_issue(uint32_t i) {
        const Table *t = &g_t[T_ORDER_ITEMS];
        if (i > t->nbase)
                return (uint32_t) (xref_get(t, i) >> 32);
        Rng r = rng3(T_ORDER_ITEMS, i, 1);
        uint32_t o = item_order(i);
        return pick_sold_issue(&r, base_count_at(&g_t[T_ISSUES], created_at(&g_t[T_ORDERS], o)));
}

typedef struct Line {
        uint32_t issue, qty;
        int64_t unit, discount, total;
} Line;

static Line item_line(uint32_t i) {
        Rng r = rng3(T_ORDER_ITEMS, i, IMM);
        Line l = { .issue = item_issue(i) };
        uint32_t q = rbelow(&r, 100);
        l.qty = q < 82 ? 1 : q < 94 ? 2 : q < 98 ? 3 : 5;
        l.unit = issue_price(l.issue);
        uint32_t dsc = rbelow(&r, 100);
        int pct = dsc < 80 ? 0 : dsc < 92 ? 10 : dsc < 98 ? 20 : 25;
        l.discount = l.unit * l.qty * pct / 100;
        l.total = l.unit * l.qty - l.discount;
        return l;
}

typedef struct OrderMoney {
        uint32_t items;
        int64_t subtotal, tax, shipping, total;
        int channel; /* 0 web, 1 store, 2 app, 3 phone */
} OrderMoney;

static const char *const CHANNELS[] = { "web", "store", "app", "phone" };

static OrderMoney order_money(uint32_t o) {
        OrderMoney m = { 0 };
        Rng r = rng3(T_ORDERS, o, IMM);
        uint32_t c = rbelow(&r, 100);
        m.channel = c < 58 ? 0 : c < 82 ? 1 : c < 97 ? 2 : 3;
        uint32_t first, n;
        order_items_range(o, &first, &n);
        m.items = n;
        for (uint32_t i = first; i < first + n; i++)
                m.subtotal += item_line(i).total;
        m.tax = (m.subtotal * 825 + 5000) / 10000;
        m.shipping = m.channel == 1 ? 0 : m.subtotal >= 5000 ? 0 : m.subtotal >= 2500 ? 499 : 799;
        m.total = m.subtotal + m.tax + m.shipping;
        return m;
}

static uint32_t order_customer(uint32_t o) {
        const Table *t = &g_t[T_ORDERS];
        if (o > t->nbase)
                return XREF_A(xref_get(t, o));
        Rng r = rng3(T_ORDERS, o, 1);
        uint32_t n = base_count_at(&g_t[T_CUSTOMERS], created_at(t, o));
        /* regulars: a fifth of the customers place most orders */
        if (rbelow(&r, 100) < 60)
                return 1 + rbelow(&r, (n + 4) / 5) * 5 % n;
        return 1 + rbelow(&r, n);
}

/* Order status: a path per order; the step is where it is on the path. */
enum { ST_PENDING, ST_PAID, ST_PROCESSING, ST_SHIPPED, ST_DELIVERED, ST_CANCELLED, ST_REFUNDED };
static const char *const ORDER_STATUS[] = { "pending", "paid", "processing", "shipped", "delivered", "cancelled", "refunded" };
static const uint8_t PATH_NORMAL[] = { ST_PENDING, ST_PAID, ST_PROCESSING, ST_SHIPPED, ST_DELIVERED };
static const uint8_t PATH_CANCEL[] = { ST_PENDING, ST_CANCELLED };
static const uint8_t PATH_REFUND[] = { ST_PENDING, ST_PAID, ST_PROCESSING, ST_SHIPPED, ST_DELIVERED, ST_REFUNDED };
static const uint8_t PATH_PAIDCANCEL[] = { ST_PENDING, ST_PAID, ST_CANCELLED };

static void order_path(uint32_t o, const uint8_t **path, uint32_t *len) {
        uint32_t h = (uint32_t) hash3(T_ORDERS, o, 2) % 100;
        if (h < 88)
                *path = PATH_NORMAL, *len = sizeof PATH_NORMAL;
        else if (h < 94)
                *path = PATH_CANCEL, *len = sizeof PATH_CANCEL;
        else if (h < 97)
                *path = PATH_REFUND, *len = sizeof PATH_REFUND;
        else
                *path = PATH_PAIDCANCEL, *len = sizeof PATH_PAIDCANCEL;
}

/* Step of a base order on day 0: orders move about one step a day. */
static uint32_t order_base_step(uint32_t o, uint32_t len) {
        const Table *t = &g_t[T_ORDERS];
        if (o > t->nbase)
                return 0;
        int32_t age = g_day0 - created_day(t, o);
        uint32_t s = (uint32_t) age + (uint32_t) (hash3(T_ORDERS, o, 3) & 1);
        if (len == sizeof PATH_REFUND)
                s = s >= 30 ? len - 1 : s < len - 1 ? s : len - 2; /* refunds come late */
        return s < len - 1 ? s : len - 1;
}

static uint32_t order_step(uint32_t o, uint32_t ver, uint32_t *len) {
        const uint8_t *path;
        order_path(o, &path, len);
        uint32_t s = order_base_step(o, *len) + V_COUNT(ver);
        return s < *len - 1 ? s : *len - 1;
}

/* Payments: failed attempts stay failed; others are authorized, captured
 * the next day, rarely refunded. */
static bool payment_failed(uint32_t p) {
        return hash3(T_PAYMENTS, p, 2) % 100 < 3;
}

static uint32_t payment_order(uint32_t p) {
        const Table *t = &g_t[T_PAYMENTS];
        return p <= t->nbase ? p : XREF_A(xref_get(t, p));
}

static uint32_t payment_step(uint32_t p, uint32_t ver) {
        const Table *t = &g_t[T_PAYMENTS];
        uint32_t s = V_COUNT(ver);
        if (p <= t->nbase && created_at(&g_t[T_ORDERS], p) + 12 * 3600 < (int64_t) g_day0 * 86400)
                s++;
        return s < 2 ? s : 2;
}

/* ---- rows ---------------------------------------------------------------------------- */

static inline void customer_name(uint32_t c, uint32_t *fi, uint32_t *li) {
        Rng r = rng3(T_CUSTOMERS, c, IMM);
        *fi = rbelow(&r, L_FIRST.n);
        *li = rbelow(&r, L_LAST.n);
}

static char *put_person(char *o, uint32_t c, bool email_form, Rng *r) {
        uint32_t fi, li;
        customer_name(c, &fi, &li);
        if (!email_form) {
                o = put_str(o, L_FIRST.v[fi]);
                *o++ = ' ';
                return put_str(o, L_LAST.v[li]);
        }
        uint32_t form = rbelow(r, 10);
        if (form < 4) {
                o = put_str(o, g_first_lc[fi]);
                *o++ = '.';
                o = put_str(o, g_last_lc[li]);
        } else if (form < 6) {
                *o++ = g_first_lc[fi].s[0];
                o = put_str(o, g_last_lc[li]);
        } else if (form < 8) {
                o = put_str(o, g_first_lc[fi]);
                o = put_str(o, g_last_lc[li]);
                o = put_u(o, 1 + rbelow(r, 99));
        } else {
                o = put_str(o, g_first_lc[fi]);
                *o++ = '_';
                o = put_u(o, 1950 + rbelow(r, 60));
        }
        /* the customer id keeps addresses unique, as a real shop enforces */
        if (c % 7 == 0) {
                *o++ = '.';
                o = put_u(o, c % 1000);
        }
        *o++ = '@';
        return put_pick(o, &L_DOMAIN, r);
}

static char *put_postal(char *o, const Str *city, Rng *r) {
        const Str pre = city[2], country = city[3];
        if (country.s[0] == 'U') { /* US: zip3 + 2 digits */
                o = put_str(o, pre);
                return put_uw(o, rbelow(r, 100), 2);
        }
        if (country.s[0] == 'C') { /* CA: A1A 1A1 */
                o = put_str(o, pre);
                *o++ = ' ';
                *o++ = (char) ('1' + rbelow(r, 9));
                *o++ = (char) ('A' + rbelow(r, 26));
                *o++ = (char) ('1' + rbelow(r, 9));
                return o;
        }
        if (country.s[0] == 'G') { /* GB: SW1 2AB */
                o = put_str(o, pre);
                *o++ = ' ';
                *o++ = (char) ('1' + rbelow(r, 9));
                *o++ = (char) ('A' + rbelow(r, 26));
                *o++ = (char) ('A' + rbelow(r, 26));
                return o;
        }
        o = put_str(o, pre); /* DE */
        return put_uw(o, rbelow(r, 100), 2);
}

/* line1, line2, city, region, postal code, country of an address, drawn
 * from r (orders copy the address as it was first entered). */
static char *put_address_body(char *o, Rng *r, uint32_t *ret_city) {
        o = put_u(o, 1 + rbelow(r, rbelow(r, 100) < 70 ? 999 : 19999));
        *o++ = ' ';
        o = put_pick(o, &L_STREET, r);
        *o++ = ' ';
        o = put_pick(o, &L_SUFFIX, r);
        TAB(o);
        if (rbelow(r, 100) < 27)
                o = put_pick(o, &L_UNIT, r);
        else
                o = PUT_NULL(o);
        TAB(o);
        uint32_t ci = rbelow(r, L_CITY.n / 4);
        const Str *city = &L_CITY.v[4 * ci];
        if (ret_city)
                *ret_city = ci;
        o = put_str(o, city[0]);
        TAB(o);
        o = put_str(o, city[1]);
        TAB(o);
        o = put_postal(o, city, r);
        TAB(o);
        return put_str(o, city[3]);
}

/* A coordinate in millionths of a degree as numeric(9,6). */
static char *put_coord(char *o, int64_t micro) {
        if (micro < 0) {
                *o++ = '-';
                micro = -micro;
        }
        o = put_u(o, (uint64_t) micro / 1000000);
        *o++ = '.';
        return put_uw(o, (uint64_t) micro % 1000000, 6);
}

static char *put_phone(char *o, Rng *r) {
        o = PUTS(o, "+1-");
        o = put_u(o, 201 + rbelow(r, 780));
        *o++ = '-';
        o = put_uw(o, rbelow(r, 1000), 3);
        *o++ = '-';
        return put_uw(o, rbelow(r, 10000), 4);
}

static char *put_lower(char *o, Str s) {
        for (uint32_t i = 0; i < s.n; i++) {
                char ch = s.s[i];
                if (ch >= 'A' && ch <= 'Z')
                        *o++ = (char) (ch - 'A' + 'a');
                else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
                        *o++ = ch;
        }
        return o;
}

static char *put_token(char *o, Rng *r, const char *alphabet, uint32_t nalpha, uint32_t n) {
        uint64_t bits = 0;
        for (uint32_t i = 0; i < n; i++) {
                if (i % 8 == 0)
                        bits = rnext(r);
                *o++ = alphabet[(bits & 0xff) * nalpha >> 8];
                bits >>= 8;
        }
        return o;
}

static const char B64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char ALNUM[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static char *put_uuid(char *o, Rng *r) {
        uint64_t a = rnext(r), b = rnext(r);
        o = put_hex(o, a, 8);
        *o++ = '-';
        o = put_hex(o, a >> 32, 4);
        *o++ = '-';
        *o++ = '4';
        o = put_hex(o, a >> 48, 3);
        *o++ = '-';
        *o++ = "89ab"[b & 3];
        o = put_hex(o, b >> 2, 3);
        *o++ = '-';
        return put_hex(o, b >> 14, 12);
}

/* Sentences of n words from the word list. */
static char *put_words(char *o, Rng *r, uint32_t n) {
        bool cap = true;
        for (uint32_t i = 0; i < n; i++) {
                Str w = L_WORD.v[rbelow(r, L_WORD.n)];
                if (i)
                        *o++ = ' ';
                char *s = o;
                o = put_str(o, w);
                if (cap && *s >= 'a' && *s <= 'z')
                        *s = (char) (*s - 'a' + 'A');
                cap = false;
                if (i + 1 < n && rbelow(r, 10) == 0) {
                        *o++ = rbelow(r, 4) ? '.' : '!';
                        cap = true;
                }
        }
        *o++ = '.';
        return o;
}

static char *put_creator(char *o, uint32_t id) {
        Rng r = rng3(0xc7ea7, id, 0);
        o = put_pick(o, &L_FIRST, &r);
        *o++ = ' ';
        return put_pick(o, &L_LAST, &r);
}

static char *put_series_title(char *o, uint32_t s) {
        Rng r = rng3(T_SERIES, s, IMM);
        (void) rbelow(&r, L_PUBLISHER.n);
        if (rbelow(&r, 4) == 0)
                o = PUTS(o, "The ");
        o = put_pick(o, &L_ADJ, &r);
        *o++ = ' ';
        return put_pick(o, &L_NOUN, &r);
}

static const char *const VARIANTS[] = { "A", "A", "A", "A", "A", "A", "A", "A", "B", "B", "C", "1:10 Incentive",
                                        "1:25 Incentive", "Foil", "Virgin", "Second Printing" };
static const char *const FORMATS[] = { "floppy", "floppy", "floppy", "floppy", "floppy", "floppy", "trade paperback",
                                       "trade paperback", "hardcover", "omnibus", "magazine", "manga volume" };

/* The immutable head of an issue's stream: price, number, annual, variant. */
typedef struct IssueId {
        uint32_t price, num, variant;
        bool annual;
} IssueId;

static IssueId issue_id(uint32_t i, Rng *r) {
        IssueId x;
        *r = rng3(T_ISSUES, i, IMM);
        x.price = PRICES[rbelow(r, ARRAY_SIZE(PRICES))]; /* = issue_price() */
        x.num = 1 + rbelow(r, rbelow(r, 4) ? 24 : 300);
        x.annual = rbelow(r, 40) == 0;
        x.variant = rbelow(r, ARRAY_SIZE(VARIANTS));
        return x;
}

/* "Series Title #12", as on the cover. */
static char *put_issue_label(char *o, uint32_t i, bool variant) {
        Rng r;
        IssueId x = issue_id(i, &r);
        o = put_series_title(o, issue_series(i));
        o = x.annual ? PUTS(o, " Annual #") : PUTS(o, " #");
        o = put_u(o, x.num);
        if (variant && x.variant >= 8) {
                o = PUTS(o, " (");
                o = put(o, VARIANTS[x.variant], strlen(VARIANTS[x.variant]));
                *o++ = ')';
        }
        return o;
}

static const char MONTHS[] = "JANFEBMARAPRMAYJUNJULAUGSEPOCTNOVDEC";

/* Distributor order code: month and year of solicitation, sequence. */
static char *put_issue_code(char *o, uint32_t i) {
        int32_t day = created_day(&g_t[T_ISSUES], i) - 60;
        int y;
        unsigned m, d;
        civil_from_days(days_from_civil(1940, 1, 1) + day, &y, &m, &d);
        o = put(o, MONTHS + 3 * (m - 1), 3);
        o = put_uw(o, (uint64_t) y % 100, 2);
        return put_uw(o, hash3(T_ISSUES, i, 11) % 10000, 4);
}

static char *row_addresses(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_ADDRESSES];
        uint32_t cust = address_customer(pk);
        /* an edit rewrites the address (a move, a correction) */
        Rng r = rng3(T_ADDRESSES, pk, V_COUNT(ver) / 2);
        Rng m = rng3(T_ADDRESSES, pk, V_COUNT(ver));
        Rng x = rng3(T_ADDRESSES, pk, 0x10000 + V_COUNT(ver) / 2);
        o = put_u(o, pk);
        TAB(o);
        o = put_u(o, cust);
        TAB(o);
        o = rbelow(&m, 100) < 78 ? PUTS(o, "shipping") : PUTS(o, "billing");
        TAB(o);
        o = put_person(o, cust, false, &r);
        TAB(o);
        o = rbelow(&x, 100) < 5 ? put_pick(o, &L_COMPANY, &x) : PUT_NULL(o);
        TAB(o);
        uint32_t ci;
        o = put_address_body(o, &r, &ci);
        TAB(o);
        /* geocoded: the city's centre (made up) and a few km around it */
        if (rbelow(&r, 100) < 92) {
                uint64_t h = hash3(0xc17, ci, 0);
                bool eu = L_CITY.v[4 * ci + 3].s[0] == 'G' || L_CITY.v[4 * ci + 3].s[0] == 'D';
                int64_t lat = eu ? 48000000 + (int64_t) (h % 8000000) : 26000000 + (int64_t) (h % 22000000);
                int64_t lon = eu ? -3000000 + (int64_t) (h >> 32) % 16000000 : -71000000 - (int64_t) (h >> 32) % 52000000;
                o = put_coord(o, lat + (int64_t) rbelow(&r, 200000) - 100000);
                TAB(o);
                o = put_coord(o, lon + (int64_t) rbelow(&r, 200000) - 100000);
        } else
                o = PUTS(o, "\\N\t\\N");
        TAB(o);
        o = rbelow(&x, 100) < 55 ? put_phone(o, &x) : PUT_NULL(o);
        TAB(o);
        o = rbelow(&x, 100) < 18 ? put_pick(o, &L_INSTRUCTIONS, &x) : PUT_NULL(o);
        TAB(o);
        *o++ = (customer_address(cust) == pk || rbelow(&m, 100) < 10) ? 't' : 'f';
        TAB(o);
        /* entered at sign-up (the first one) or some time later */
        Rng ri = rng3(T_ADDRESSES, pk, IMM);
        int64_t c = created_at(t, pk);
        if (pk <= t->nbase) {
                int64_t cc = created_at(&g_t[T_CUSTOMERS], cust), end = (int64_t) g_day0 * 86400;
                c = cc + 20 + rbelow(&ri, 600);
                if (customer_address(cust) != pk)
                        c += (int64_t) ((double) (end - c) * runit(&ri) * runit(&ri));
        }
        uint32_t usec = rbelow(&ri, 1000000);
        o = put_ts(o, c, usec);
        TAB(o);
        if (V_COUNT(ver))
                o = put_ts(o, change_time(V_DAY(ver), &m), rbelow(&m, 1000000));
        else
                o = put_ts(o, c, usec);
        *o++ = '\n';
        return o;
}

static const char *const THEMES[] = { "system", "system", "light", "dark", "dark" };
static const char *const STORES[] = { "downtown", "downtown", "eastside", "mall", "online-only" };
static const char *const PREF_COND[] = { "NM", "NM", "VF/NM", "any" };

static char *row_customers(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_CUSTOMERS];
        Rng r = rng3(T_CUSTOMERS, pk, IMM); /* same stream as customer_name() */
        uint32_t fi = rbelow(&r, L_FIRST.n), li = rbelow(&r, L_LAST.n);
        uint32_t cnt = V_COUNT(ver);
        Rng m = rng3(T_CUSTOMERS, pk, cnt);
        Rng e = rng3(T_CUSTOMERS, pk, 0x10000 + cnt / 16); /* email, phone, password change rarely */
        Rng p = rng3(T_CUSTOMERS, pk, 0x20000 + cnt / 6);  /* preferences, pull list */
        int64_t c = created_at(t, pk);
        char *start = o;
        o = put_u(o, pk);
        TAB(o);
        /* user name */
        if (rbelow(&r, 2)) {
                o = put_str(o, g_first_lc[fi]);
                *o++ = '_';
                o = put_str(o, g_last_lc[li]);
        } else {
                o = put_lower(o, L_ADJ.v[rbelow(&r, L_ADJ.n)]);
                o = put_lower(o, L_NOUN.v[rbelow(&r, L_NOUN.n)]);
        }
        o = put_u(o, rbelow(&r, 1000));
        TAB(o);
        o = put_str(o, L_FIRST.v[fi]);
        TAB(o);
        o = put_str(o, L_LAST.v[li]);
        TAB(o);
        o = put_person(o, pk, true, &e);
        TAB(o);
        o = PUTS(o, "$2b$12$");
        o = put_token(o, &e, B64, 64, 53);
        TAB(o);
        o = rbelow(&e, 100) < 85 ? put_phone(o, &e) : PUT_NULL(o);
        TAB(o);
        if (rbelow(&r, 100) < 70)
                o = put_date(o, (int32_t) (3650 + rbelow(&r, 21000))); /* 1950..2007 */
        else
                o = PUT_NULL(o);
        TAB(o);
        uint32_t cusec = rbelow(&r, 1000000);
        o = put_ts(o, c, cusec);
        TAB(o);
        int64_t login;
        if (cnt)
                login = change_time(V_DAY(ver), &m);
        else if (pk > t->nbase)
                login = c + 60 + rbelow(&m, 1800);
        else /* base: some time between sign-up and day 0, mostly recent */
                login = c + (int64_t) ((double) ((int64_t) g_day0 * 86400 - c) * (1.0 - runit(&m) * runit(&m) * runit(&m)));
        o = put_ts(o, login, rbelow(&m, 1000000));
        TAB(o);
        uint32_t orders = rbelow(&r, 40) + cnt / 2;
        o = put_u(o, rbelow(&r, 1500) + cnt * 25 + rbelow(&m, 40));
        TAB(o);
        o = put_u(o, orders);
        TAB(o);
        int64_t spend = (int64_t) orders * (1500 + rbelow(&r, 4000)) + rbelow(&m, 2000);
        o = put_money(o, spend);
        TAB(o);
        uint32_t st = rbelow(&m, 1000);
        o = st < 970 ? PUTS(o, "active") : st < 995 ? PUTS(o, "inactive") : PUTS(o, "suspended");
        TAB(o);
        *o++ = rbelow(&e, 100) < 45 ? 't' : 'f';
        TAB(o);
        if (rbelow(&r, 100) < 80)
                o = put_pick(o, &L_PUBLISHER, &r);
        else
                o = PUT_NULL(o);
        TAB(o);
        /* preferences, jsonb: keys by length, then bytes */
        o = PUTS(o, "{\"theme\": \"");
        const char *th = THEMES[rbelow(&p, ARRAY_SIZE(THEMES))];
        o = put(o, th, strlen(th));
        o = PUTS(o, "\", \"pull_list\": [");
        uint32_t npull = rbelow(&p, 100) < 45 ? 0 : 1 + rbelow(&p, 14);
        uint32_t nser = g_t[T_SERIES].nbase;
        for (uint32_t i = 0; i < npull; i++) {
                if (i)
                        o = PUTS(o, ", ");
                o = put_u(o, nser - (uint32_t) (nser * runit(&p) * runit(&p)));
        }
        o = PUTS(o, "], \"newsletter\": ");
        o = rbelow(&e, 100) < 45 ? PUTS(o, "true") : PUTS(o, "false");
        o = PUTS(o, ", \"notify_foc\": ");
        o = rbelow(&p, 100) < 30 ? PUTS(o, "true") : PUTS(o, "false");
        o = PUTS(o, ", \"favorite_genres\": [");
        for (uint32_t i = 0, n = rbelow(&p, 4), g = rbelow(&p, L_GENRE.n); i < n; i++) {
                if (i)
                        o = PUTS(o, ", ");
                *o++ = '"';
                o = put_str(o, L_GENRE.v[(g + 7 * i) % L_GENRE.n]); /* distinct */
                *o++ = '"';
        }
        o = PUTS(o, "], \"preferred_store\": \"");
        const char *sto = STORES[rbelow(&p, ARRAY_SIZE(STORES))];
        o = put(o, sto, strlen(sto));
        o = PUTS(o, "\", \"preferred_condition\": \"");
        const char *pc = PREF_COND[rbelow(&p, ARRAY_SIZE(PREF_COND))];
        o = put(o, pc, strlen(pc));
        o = PUTS(o, "\"}");
        TAB(o);
        /* staff notes */
        uint32_t nt = rbelow(&p, 100);
        if (nt < 12) {
                o = PUTS(o, "Pull box #");
                o = put_u(o, 1 + pk % 2400);
                o = PUTS(o, ". ");
                o = put_pick(o, &L_STAFFNOTE, &p);
        } else if (nt < 25)
                o = put_pick(o, &L_STAFFNOTE, &p);
        else
                o = PUT_NULL(o);
        TAB(o);
        o = cnt ? put_ts(o, login, rbelow(&m, 1000000)) : put_ts(o, c, cusec);
        *o++ = '\n';
        if (!(ver & V_ERASED))
                return o;
        /* erased on request: the account stays for the orders' sake */
        Rng x = rng3(T_CUSTOMERS, pk, 0x30000);
        o = start;
        o = put_u(o, pk);
        o = PUTS(o, "\terased_");
        o = put_u(o, pk);
        o = PUTS(o, "\tErased\tCustomer\terased-");
        o = put_u(o, pk);
        o = PUTS(o, "@example.invalid\t!\t\\N\t\\N\t");
        o = put_ts(o, c, cusec);
        o = PUTS(o, "\t\\N\t0\t");
        o = put_u(o, orders);
        TAB(o);
        o = put_money(o, spend);
        o = PUTS(o, "\terased\tf\t\\N\t{}\t\\N\t");
        o = put_ts(o, change_time(V_DAY(ver), &x), rbelow(&x, 1000000));
        *o++ = '\n';
        return o;
}

/* Event kinds and the entity they refer to. */
enum { EV_PAGE_VIEW, EV_SEARCH, EV_ADD_TO_CART, EV_WISHLIST, EV_LOGIN, EV_LOGOUT, EV_CHECKOUT,
       EV_ORDER_PLACED, EV_PAYMENT_CAPTURED, EV_INVENTORY, EV_PRICE, EV_REVIEW, EV_COUNT };
static const char *const EV_NAMES[] = { "page_view", "search", "add_to_cart", "wishlist_add", "login", "logout",
                                        "checkout_started", "order_placed", "payment_captured",
                                        "inventory_adjusted", "price_changed", "review_posted" };
static const uint8_t EV_WEIGHTS[] = { 44, 12, 10, 4, 6, 3, 5, 0, 3, 7, 2, 4 };
#define XREF_EV_ORDER 0x80000000u

static const char *const VIEWPORTS[] = { "390x844", "393x873", "414x896", "360x800", "1920x1080", "1536x864",
                                         "1440x900", "1366x768", "2560x1440", "820x1180" };
static const char *const STAFF[] = { "pos-1", "pos-2", "pos-3", "buyer", "warehouse", "owner" };

/* The session of an event and its customer (0: not logged in); the session
 * stream s continues with the session's address and browser. */
static uint32_t event_session(uint32_t pk, Rng *s, uint64_t *sid, uint32_t *xr) {
        const Table *t = &g_t[T_EVENT_LOG];
        /* a session spans a run of consecutive events */
        uint32_t sess = pk / 6 + (pk % 6 > (uint32_t) (hash3(T_EVENT_LOG, pk / 6, 9) % 6));
        *xr = pk > t->nbase ? XREF_A(xref_get(t, pk)) : 0;
        if (*xr & XREF_EV_ORDER)
                sess = 0x80000000u | *xr;
        *s = rng3(T_EVENT_LOG, sess, 7);
        *sid = rnext(s);
        /* Random references go to rows of day 0 only: a row's content must
         * not depend on the state at dump time. */
        uint32_t cust = rbelow(s, 100) < 35 ? 0 : 1 + rbelow(s, g_t[T_CUSTOMERS].nbase);
        if (*xr & XREF_EV_ORDER)
                cust = order_customer(*xr & ~XREF_EV_ORDER);
        return cust;
}

static char *row_event_log(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_EVENT_LOG];
        bool erased = ver & V_ERASED;
        Rng r = rng3(T_EVENT_LOG, pk, IMM), s;
        uint64_t sid;
        uint32_t xr;
        uint32_t ncust = g_t[T_CUSTOMERS].nbase;
        uint32_t cust = event_session(pk, &s, &sid, &xr);
        uint32_t kind = 0, entity_id = 0;
        if (xr & XREF_EV_ORDER) {
                kind = EV_ORDER_PLACED;
                entity_id = xr & ~XREF_EV_ORDER;
        } else {
                uint32_t w = rbelow(&r, 100);
                while (w >= EV_WEIGHTS[kind]) {
                        w -= EV_WEIGHTS[kind];
                        kind++;
                }
        }
        int64_t when = created_at(t, pk);
        uint32_t nissues = g_t[T_ISSUES].nbase, norders = g_t[T_ORDERS].nbase;
        if (pk <= t->nbase) {
                nissues = base_count_at(&g_t[T_ISSUES], when);
                norders = base_count_at(&g_t[T_ORDERS], when);
        }

        o = put_u(o, pk);
        TAB(o);
        o = put_ts(o, when, rbelow(&r, 1000000));
        TAB(o);
        /* erased: the customer, the session and the address are removed */
        o = cust && !erased ? put_u(o, cust) : PUT_NULL(o);
        TAB(o);
        o = erased ? PUT_NULL(o) : put_hex(o, sid, 16);
        TAB(o);
        o = put_uuid(o, &r);
        TAB(o);
        o = put(o, EV_NAMES[kind], strlen(EV_NAMES[kind]));
        TAB(o);
        switch (kind) {
        case EV_ORDER_PLACED:
        case EV_CHECKOUT:
                o = PUTS(o, "order");
                if (!entity_id)
                        entity_id = 1 + rbelow(&r, norders);
                break;
        case EV_PAYMENT_CAPTURED:
                o = PUTS(o, "payment");
                entity_id = 1 + rbelow(&r, norders);
                break;
        case EV_LOGIN:
        case EV_LOGOUT:
                o = PUTS(o, "customer");
                entity_id = cust ? cust : 1 + rbelow(&r, ncust);
                break;
        case EV_SEARCH:
                o = PUT_NULL(o);
                break;
        case EV_INVENTORY:
                o = PUTS(o, "inventory");
                entity_id = 1 + rbelow(&r, g_t[T_INVENTORY].nbase);
                break;
        default:
                o = PUTS(o, "issue");
                entity_id = pick_sold_issue(&r, nissues);
                break;
        }
        TAB(o);
        o = entity_id && !(erased && (kind == EV_LOGIN || kind == EV_LOGOUT)) ? put_u(o, entity_id) : PUT_NULL(o);
        TAB(o);
        char *f = o;
        uint64_t ip = rnext(&s);
        o = put_u(o, 24 + ip % 200);
        *o++ = '.';
        o = put_u(o, (ip >> 8) & 255);
        *o++ = '.';
        o = put_u(o, (ip >> 16) & 255);
        *o++ = '.';
        o = put_u(o, 1 + (ip >> 24) % 254);
        if (erased)
                o = PUT_NULL(f);
        TAB(o);
        bool backoffice = kind == EV_INVENTORY || kind == EV_PRICE;
        f = o;
        if (backoffice)
                o = PUT_NULL(o);
        else
                o = put_pick(o, &L_UA, &s);
        if (erased)
                o = PUT_NULL(f);
        TAB(o);
        const char *vp = VIEWPORTS[rbelow(&s, ARRAY_SIZE(VIEWPORTS))];
        Str loc = L_LOCALE.v[rbelow(&s, L_LOCALE.n)];
        /* jsonb output: keys ordered by length, then bytes */
        switch (kind) {
        case EV_PAGE_VIEW: {
                bool series = rbelow(&r, 3) == 0;
                o = PUTS(o, "{\"path\": \"/");
                if (series) {
                        o = PUTS(o, "series/");
                        o = put_u(o, issue_series(entity_id));
                } else {
                        o = PUTS(o, "issues/");
                        o = put_u(o, entity_id);
                }
                o = PUTS(o, "\", \"title\": \"");
                o = series ? put_series_title(o, issue_series(entity_id)) : put_issue_label(o, entity_id, true);
                o = PUTS(o, "\", \"locale\": \"");
                o = put_str(o, loc);
                o = PUTS(o, "\", \"load_ms\": ");
                o = put_u(o, 80 + rbelow(&r, rbelow(&r, 10) ? 600 : 4000));
                o = PUTS(o, ", \"referrer\": ");
                if (rbelow(&r, 100) < 55)
                        o = PUTS(o, "null");
                else {
                        *o++ = '"';
                        o = put_pick(o, &L_REFERRER, &r);
                        *o++ = '"';
                }
                o = PUTS(o, ", \"viewport\": \"");
                o = put(o, vp, strlen(vp));
                o = PUTS(o, "\"}");
                break;
        }
        case EV_SEARCH:
                o = PUTS(o, "{\"q\": \"");
                o = put_pick(o, &L_SEARCH, &r);
                o = PUTS(o, "\", \"page\": ");
                o = put_u(o, 1 + (rbelow(&r, 5) == 0) * rbelow(&r, 4));
                o = PUTS(o, ", \"sort\": \"");
                o = rbelow(&r, 3) ? PUTS(o, "relevance") : PUTS(o, "release_date_desc");
                o = PUTS(o, "\", \"locale\": \"");
                o = put_str(o, loc);
                o = PUTS(o, "\", \"results\": ");
                o = put_u(o, rbelow(&r, 400));
                o = PUTS(o, ", \"latency_ms\": ");
                o = put_u(o, 8 + rbelow(&r, 120));
                *o++ = '}';
                break;
        case EV_ADD_TO_CART:
                o = PUTS(o, "{\"qty\": ");
                o = put_u(o, 1 + (rbelow(&r, 10) == 0));
                o = PUTS(o, ", \"price\": ");
                o = put_money(o, issue_price(entity_id));
                o = PUTS(o, ", \"title\": \"");
                o = put_issue_label(o, entity_id, true);
                o = PUTS(o, "\", \"cart_id\": \"");
                o = put_hex(o, sid ^ 0x5bd1e995u, 16);
                o = PUTS(o, "\", \"issue_id\": ");
                o = put_u(o, entity_id);
                o = PUTS(o, ", \"cart_size\": ");
                o = put_u(o, 1 + rbelow(&r, 6));
                *o++ = '}';
                break;
        case EV_WISHLIST:
                o = PUTS(o, "{\"list\": \"");
                o = rbelow(&r, 4) ? PUTS(o, "default") : PUTS(o, "gift ideas");
                o = PUTS(o, "\", \"title\": \"");
                o = put_issue_label(o, entity_id, true);
                o = PUTS(o, "\", \"issue_id\": ");
                o = put_u(o, entity_id);
                *o++ = '}';
                break;
        case EV_LOGIN:
                o = PUTS(o, "{\"mfa\": ");
                o = rbelow(&r, 5) ? PUTS(o, "false") : PUTS(o, "true");
                o = PUTS(o, ", \"method\": ");
                o = rbelow(&r, 4) ? PUTS(o, "\"password\"") : PUTS(o, "\"google\"");
                o = PUTS(o, ", \"success\": ");
                o = rbelow(&r, 20) ? PUTS(o, "true") : PUTS(o, "false");
                o = PUTS(o, ", \"remember_me\": ");
                o = rbelow(&r, 2) ? PUTS(o, "true") : PUTS(o, "false");
                *o++ = '}';
                break;
        case EV_LOGOUT:
                o = PUTS(o, "{\"reason\": ");
                o = rbelow(&r, 3) ? PUTS(o, "\"user\"") : PUTS(o, "\"session_expired\"");
                o = PUTS(o, ", \"session_s\": ");
                o = put_u(o, 30 + rbelow(&r, 7200));
                *o++ = '}';
                break;
        case EV_CHECKOUT:
        case EV_ORDER_PLACED: {
                OrderMoney mo = order_money(entity_id);
                o = PUTS(o, "{\"items\": ");
                o = put_u(o, mo.items);
                o = PUTS(o, ", \"total\": ");
                o = put_money(o, mo.total);
                o = PUTS(o, ", \"coupon\": null, \"channel\": \"");
                o = put(o, CHANNELS[mo.channel], strlen(CHANNELS[mo.channel]));
                o = PUTS(o, "\", \"order_id\": ");
                o = put_u(o, entity_id);
                o = PUTS(o, ", \"shipping\": \"");
                o = mo.channel == 1 ? PUTS(o, "In-store pickup") : put_pick(o, &L_SHIPPING, &r);
                o = PUTS(o, "\", \"currency\": \"USD\"}");
                break;
        }
        case EV_PAYMENT_CAPTURED:
                o = PUTS(o, "{\"amount\": ");
                o = put_money(o, 399 + rbelow(&r, 9000));
                o = PUTS(o, ", \"provider\": \"stripe\", \"card_brand\": \"");
                o = put_pick(o, &L_CARD, &r);
                o = PUTS(o, "\", \"payment_id\": ");
                o = put_u(o, entity_id);
                o = PUTS(o, ", \"risk_level\": \"normal\"}");
                break;
        case EV_INVENTORY: {
                o = PUTS(o, "{\"user\": \"");
                const char *u = STAFF[rbelow(&r, ARRAY_SIZE(STAFF))];
                o = put(o, u, strlen(u));
                if (rbelow(&r, 3)) {
                        o = PUTS(o, "\", \"delta\": ");
                        o = put_i(o, -1 - (int) rbelow(&r, 3));
                        o = PUTS(o, ", \"reason\": \"sale\"");
                } else {
                        o = PUTS(o, "\", \"delta\": ");
                        o = put_u(o, 1 + rbelow(&r, 24));
                        o = PUTS(o, ", \"reason\": \"restock\"");
                }
                o = PUTS(o, ", \"qty_after\": ");
                o = put_u(o, rbelow(&r, 30));
                o = PUTS(o, ", \"inventory_id\": ");
                o = put_u(o, entity_id);
                *o++ = '}';
                break;
        }
        case EV_PRICE: {
                uint32_t p = issue_price(entity_id);
                o = PUTS(o, "{\"new\": ");
                o = put_money(o, p);
                o = PUTS(o, ", \"old\": ");
                o = put_money(o, p - 100);
                o = PUTS(o, ", \"user\": \"buyer\", \"issue_id\": ");
                o = put_u(o, entity_id);
                o = PUTS(o, ", \"effective\": \"");
                o = put_date(o, (int32_t) (when / 86400) + 1);
                o = PUTS(o, "\"}");
                break;
        }
        default: /* review */
                o = PUTS(o, "{\"body\": \"");
                o = put_words(o, &r, 8 + rbelow(&r, 40));
                o = PUTS(o, "\", \"title\": \"");
                o = put_pick(o, &L_ADJ, &r);
                *o++ = ' ';
                o = put_pick(o, &L_NOUN, &r);
                o = PUTS(o, "!\", \"rating\": ");
                o = put_u(o, 1 + rbelow(&r, 5));
                o = PUTS(o, ", \"issue_id\": ");
                o = put_u(o, entity_id);
                *o++ = '}';
                break;
        }
        *o++ = '\n';
        return o;
}

static const char *const LOCATIONS[] = { "store-front", "store-front", "back-room", "warehouse-east", "warehouse-west" };
static const char *const CONDITIONS[] = { "NM", "NM", "NM", "NM/M", "VF/NM", "VF", "FN", "VG" };
static const char *const SUPPLIERS[] = { "Diamond", "Lunar", "Lunar", "PRH", "PRH", "Marvel Direct", "Local buy" };

static char *row_inventory(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_INVENTORY];
        Rng r = rng3(T_INVENTORY, pk, IMM);
        uint32_t cnt = V_COUNT(ver);
        Rng m = rng3(T_INVENTORY, pk, cnt);
        uint32_t issue = inventory_issue(pk);
        o = put_u(o, pk);
        TAB(o);
        o = put_u(o, issue);
        TAB(o);
        uint32_t li = rbelow(&r, ARRAY_SIZE(LOCATIONS));
        const char *loc = LOCATIONS[li];
        const char *cond = CONDITIONS[rbelow(&r, ARRAY_SIZE(CONDITIONS))];
        o = put_issue_code(o, issue);
        *o++ = '-';
        o = put(o, cond, strlen(cond));
        TAB(o);
        o = put(o, loc, strlen(loc));
        TAB(o);
        o = put(o, cond, strlen(cond));
        TAB(o);
        uint32_t q = rbelow(&m, 100);
        o = put_u(o, q < 15 ? 0 : q < 60 ? rbelow(&m, 6) : q < 90 ? rbelow(&m, 25) : rbelow(&m, 120));
        TAB(o);
        o = put_u(o, rbelow(&m, 4) == 0 ? rbelow(&m, 4) : 0);
        TAB(o);
        o = put_u(o, 1 + rbelow(&r, 5));
        TAB(o);
        o = put_money(o, issue_price(issue) * (45 + rbelow(&r, 15)) / 100);
        TAB(o);
        const char *sup = SUPPLIERS[rbelow(&r, ARRAY_SIZE(SUPPLIERS))];
        o = put(o, sup, strlen(sup));
        TAB(o);
        *o++ = (char) ('A' + rbelow(&r, 12));
        *o++ = '-';
        o = put_uw(o, 1 + rbelow(&r, 40), 2);
        *o++ = '-';
        o = put_u(o, 1 + rbelow(&r, 6));
        TAB(o);
        /* the last stock-take of the location: one transaction, one now() */
        int64_t c = created_at(t, pk), take = (int64_t) (g_day0 - 2 - 5 * (int32_t) li) * 86400 + 2 * 3600 + 131 * li;
        int64_t counted = c + 600 + rbelow(&r, 3600);
        uint32_t cusec = rbelow(&r, 1000000);
        if (c + 86400 < take)
                counted = take, cusec = 100000 + 7919 * li;
        int64_t upd = cnt || pk > t->nbase ? change_time(V_DAY(ver), &m) : counted;
        uint32_t uusec = cnt || pk > t->nbase ? rbelow(&m, 1000000) : cusec;
        if (cnt && rbelow(&m, 4) == 0) /* a cycle count */
                counted = upd, cusec = uusec;
        o = put_ts(o, counted, cusec);
        TAB(o);
        o = put_ts(o, upd, uusec);
        *o++ = '\n';
        return o;
}

static const char *const AGE_RATINGS[] = { "All Ages", "T", "T", "T+", "T+", "Parental Advisory", "Mature" };

static char *row_issues(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_ISSUES];
        Rng r;
        IssueId id = issue_id(pk, &r);
        uint32_t cnt = V_COUNT(ver);
        Rng m = rng3(T_ISSUES, pk, cnt);
        uint32_t series = issue_series(pk);
        Rng sr = rng3(T_SERIES, series, IMM);
        int32_t release = issue_release(pk);

        o = put_u(o, pk);
        TAB(o);
        o = put_u(o, series);
        TAB(o);
        if (id.annual)
                o = PUTS(o, "Annual ");
        o = put_u(o, id.num);
        TAB(o);
        const char *v = VARIANTS[id.variant];
        o = put(o, v, strlen(v));
        TAB(o);
        o = put_pick(o, &L_ADJ, &r);
        *o++ = ' ';
        o = put_pick(o, &L_NOUN, &r);
        if (rbelow(&r, 3) == 0) {
                o = PUTS(o, ", Part ");
                o = put_u(o, 1 + rbelow(&r, 6));
        }
        TAB(o);
        int y;
        unsigned mo, d;
        civil_from_days(days_from_civil(1940, 1, 1) + release + 60, &y, &mo, &d);
        o = put_uw(o, (uint64_t) y, 4);
        *o++ = '-';
        o = put_uw(o, mo, 2);
        o = PUTS(o, "-01");
        TAB(o);
        o = put_date(o, release);
        TAB(o);
        o = put_date(o, release - 19); /* final order cutoff: the Monday, 2.5 weeks before */
        TAB(o);
        o = put_money(o, id.price);
        TAB(o);
        /* UPC: publisher prefix (per series) + item + issue/variant/printing */
        o = put_uw(o, 7 + rbelow(&sr, 3), 1);
        o = put_uw(o, rnext(&sr) % 1000000, 6);
        o = put_uw(o, rnext(&sr) % 100000, 5);
        o = put_uw(o, id.num % 1000, 3);
        o = put_uw(o, 1 + rbelow(&r, 3), 1);
        o = put_uw(o, 1, 1);
        TAB(o);
        const char *f = FORMATS[rbelow(&r, ARRAY_SIZE(FORMATS))];
        if (f[0] != 'f' && f[0] != 'm') { /* books have an ISBN */
                o = PUTS(o, "978-1-");
                o = put_uw(o, rbelow(&sr, 10000), 4);
                *o++ = '-';
                o = put_uw(o, rbelow(&r, 10000), 4);
                *o++ = '-';
                o = put_u(o, rbelow(&r, 10));
        } else
                o = PUT_NULL(o);
        TAB(o);
        o = put_issue_code(o, pk);
        TAB(o);
        uint32_t writer = 1 + rbelow(&sr, 600), artist = 1 + (rbelow(&r, 4) ? rbelow(&sr, 600) : rbelow(&r, 600));
        uint32_t cover = 1 + rbelow(&r, 600);
        o = put_creator(o, writer);
        TAB(o);
        o = put_creator(o, artist);
        TAB(o);
        o = put_creator(o, 1 + rbelow(&sr, 600)); /* colorist */
        TAB(o);
        o = put_creator(o, 1 + rbelow(&sr, 600)); /* letterer */
        TAB(o);
        o = put_creator(o, cover);
        TAB(o);
        o = put_creator(o, 1 + rbelow(&sr, 600)); /* editor */
        TAB(o);
        static const uint16_t PAGES[] = { 24, 32, 32, 32, 40, 48, 64, 96, 128, 144, 160, 192, 320 };
        uint32_t pages = PAGES[rbelow(&r, ARRAY_SIZE(PAGES))];
        o = put_u(o, pages);
        TAB(o);
        o = put(o, f, strlen(f));
        TAB(o);
        const char *ra = AGE_RATINGS[rbelow(&sr, ARRAY_SIZE(AGE_RATINGS))];
        o = put(o, ra, strlen(ra));
        TAB(o);
        o = put_u(o, 40 + pages * (f[0] == 'h' || f[0] == 'o' ? 6 : 3) + rbelow(&r, 20));
        TAB(o);
        /* as of its last change; the release day's update ends the preorder */
        uint32_t st = rbelow(&m, 100);
        if (release > g_day0 + V_DAY(ver))
                o = PUTS(o, "preorder");
        else
                o = st < 78 ? PUTS(o, "available") : st < 90 ? PUTS(o, "sold_out") : st < 96 ? PUTS(o, "backorder") : PUTS(o, "discontinued");
        TAB(o);
        /* the solicitation text */
        o = put_pick(o, &L_SOLICIT, &r);
        *o++ = ' ';
        o = put_words(o, &r, 20 + rbelow(&r, 50));
        if (rbelow(&r, 2)) {
                *o++ = ' ';
                o = put_pick(o, &L_SOLICIT, &r);
        }
        o = PUTS(o, " Written by ");
        o = put_creator(o, writer);
        o = PUTS(o, ", art by ");
        o = put_creator(o, artist);
        o = PUTS(o, ", cover by ");
        o = put_creator(o, cover);
        o = PUTS(o, ". ");
        o = put_u(o, pages);
        o = PUTS(o, " pages, ");
        o = put(o, f, strlen(f));
        o = PUTS(o, ", ");
        o = put(o, ra, strlen(ra));
        o = PUTS(o, ". $");
        o = put_money(o, id.price);
        TAB(o);
        if (id.variant >= 8) {
                o = put(o, v, strlen(v));
                o = PUTS(o, " cover by ");
                o = put_creator(o, 1 + rbelow(&r, 600));
                o = rbelow(&r, 2) ? PUTS(o, ". Limited to retailer allocation.") : PUTS(o, ".");
        } else
                o = PUT_NULL(o);
        TAB(o);
        if (cnt)
                o = put_ts(o, change_time(V_DAY(ver), &m), rbelow(&m, 1000000));
        else
                o = put_ts(o, created_at(t, pk), rbelow(&m, 1000000));
        *o++ = '\n';
        return o;
}

static char *row_order_items(char *o, uint32_t pk, uint32_t ver) {
        Line l = item_line(pk);
        o = put_u(o, pk);
        TAB(o);
        uint32_t order = item_order(pk);
        o = put_u(o, order);
        TAB(o);
        o = put_u(o, l.issue);
        TAB(o);
        o = put_issue_code(o, l.issue);
        TAB(o);
        o = put_issue_label(o, l.issue, true);
        TAB(o);
        Rng r = rng3(T_ORDER_ITEMS, pk, 2);
        const char *cond = CONDITIONS[rbelow(&r, 3) ? 0 : rbelow(&r, ARRAY_SIZE(CONDITIONS))];
        o = put(o, cond, strlen(cond));
        TAB(o);
        o = put_u(o, l.qty);
        TAB(o);
        o = put_money(o, l.unit);
        TAB(o);
        o = put_money(o, l.discount);
        TAB(o);
        o = put_money(o, (l.total * 825 + 5000) / 10000);
        TAB(o);
        o = put_money(o, l.total);
        TAB(o);
        o = put_u(o, V_COUNT(ver) ? 1 + rbelow(&r, l.qty) : 0); /* a line is returned once */
        TAB(o);
        o = put_ts(o, created_at(&g_t[T_ORDERS], order) + 1 + pk % 7, rbelow(&r, 1000000));
        *o++ = '\n';
        return o;
}

static char *row_orders(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_ORDERS];
        Rng r = rng3(T_ORDERS, pk, 4);
        Rng m = rng3(T_ORDERS, pk, V_COUNT(ver));
        OrderMoney mo = order_money(pk);
        uint32_t cust = order_customer(pk);
        const uint8_t *path;
        uint32_t len;
        order_path(pk, &path, &len);
        uint32_t step = order_step(pk, ver, &len);
        int64_t placed = created_at(t, pk);
        bool ship = mo.channel != 1;
        bool erased = ver & V_ERASED; /* the customer's personal data removed */

        o = put_u(o, pk);
        TAB(o);
        o = put_u(o, cust);
        TAB(o);
        uint32_t addr = customer_address(cust);
        o = ship && !erased ? put_u(o, addr) : PUT_NULL(o);
        TAB(o);
        const char *st = ORDER_STATUS[path[step]];
        o = put(o, st, strlen(st));
        TAB(o);
        uint32_t usec = rbelow(&r, 1000000);
        o = put_ts(o, placed, usec);
        TAB(o);
        int64_t upd;
        if (V_COUNT(ver))
                upd = change_time(V_DAY(ver), &m);
        else if (step == 0)
                upd = placed;
        else {
                upd = placed + (int64_t) step * 20 * 3600 + rbelow(&m, 4 * 3600);
                if (upd >= (int64_t) g_day0 * 86400)
                        upd = (int64_t) g_day0 * 86400 - 1 - rbelow(&m, 3600);
                if (upd < placed)
                        upd = placed;
        }
        o = put_ts(o, upd, upd == placed ? usec : rbelow(&m, 1000000));
        TAB(o);
        o = put_u(o, mo.items);
        TAB(o);
        o = put_money(o, mo.subtotal);
        TAB(o);
        o = put_money(o, mo.tax);
        TAB(o);
        o = put_money(o, mo.shipping);
        TAB(o);
        o = put_money(o, mo.total);
        TAB(o);
        o = PUTS(o, "USD");
        TAB(o);
        o = put(o, CHANNELS[mo.channel], strlen(CHANNELS[mo.channel]));
        TAB(o);
        if (rbelow(&r, 100) < 12)
                o = put_pick(o, &L_COUPON, &r);
        else
                o = PUT_NULL(o);
        TAB(o);
        if (erased) {
                o = PUTS(o, "erased-");
                o = put_u(o, cust);
                o = PUTS(o, "@example.invalid");
        } else {
                Rng ce = rng3(T_CUSTOMERS, cust, 0x10000);
                o = put_person(o, cust, true, &ce);
        }
        TAB(o);
        /* the shipping address as it was when the order was placed */
        if (ship) {
                Rng ar = rng3(T_ADDRESSES, addr, 0);
                if (erased) { /* only what the tax records need */
                        char body[256], *b = body, *e = put_address_body(body, &ar, NULL);
                        o = PUTS(o, "\\N\t\\N\t\\N\t");
                        for (int fld = 0; fld < 6; fld++) {
                                char *end = memchr(b, '\t', (size_t) (e - b));
                                if (!end)
                                        end = e;
                                if (fld >= 2)
                                        o = fld == 4 ? PUT_NULL(o) : put(o, b, (size_t) (end - b));
                                if (fld >= 2 && fld < 5)
                                        TAB(o);
                                b = end + 1;
                        }
                } else {
                        o = put_person(o, cust, false, &ar);
                        TAB(o);
                        o = put_address_body(o, &ar, NULL);
                }
                TAB(o);
                o = put_pick(o, &L_SHIPPING, &r);
        } else
                o = PUTS(o, "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\tIn-store pickup");
        TAB(o);
        uint32_t ps = path[step];
        if (ship && (ps == ST_SHIPPED || ps == ST_DELIVERED || ps == ST_REFUNDED)) {
                Rng tr = rng3(T_ORDERS, pk, 5);
                if (rbelow(&tr, 2)) {
                        o = PUTS(o, "1Z");
                        o = put_token(o, &tr, ALNUM, 36, 16);
                } else {
                        o = PUTS(o, "9400");
                        o = put_token(o, &tr, ALNUM, 10, 18);
                }
        } else
                o = PUT_NULL(o);
        TAB(o);
        if (mo.channel == 1 || erased)
                o = PUTS(o, "\\N\t\\N");
        else {
                uint64_t ip = rnext(&r);
                o = put_u(o, 24 + ip % 200);
                *o++ = '.';
                o = put_u(o, (ip >> 8) & 255);
                *o++ = '.';
                o = put_u(o, (ip >> 16) & 255);
                *o++ = '.';
                o = put_u(o, 1 + (ip >> 24) % 254);
                TAB(o);
                o = mo.channel == 3 ? PUT_NULL(o) : put_pick(o, &L_UA, &r);
        }
        TAB(o);
        if (rbelow(&r, 100) < 6 && !erased)
                o = put_pick(o, &L_NOTE, &r);
        else
                o = PUT_NULL(o);
        *o++ = '\n';
        return o;
}

static const char *const PROVIDERS[] = { "stripe", "stripe", "stripe", "stripe", "paypal", "paypal", "adyen", "square",
                                         "gift_card" };
static const char *const PAY_STATUS[] = { "authorized", "captured", "refunded" };
static const char *const FAIL_REASONS[] = { "card_declined", "insufficient_funds", "expired_card", "processing_error",
                                            "incorrect_cvc" };
static const char *const RISK[] = { "normal", "normal", "normal", "normal", "normal", "normal", "elevated", "highest" };

static char *row_payments(char *o, uint32_t pk, uint32_t ver) {
        Rng r = rng3(T_PAYMENTS, pk, IMM);
        Rng m = rng3(T_PAYMENTS, pk, V_COUNT(ver));
        uint32_t order = payment_order(pk);
        OrderMoney mo = order_money(order);

        o = put_u(o, pk);
        TAB(o);
        o = put_u(o, order);
        TAB(o);
        uint32_t prov = rbelow(&r, ARRAY_SIZE(PROVIDERS));
        const char *pv = PROVIDERS[prov];
        o = put(o, pv, strlen(pv));
        TAB(o);
        /* provider reference: prefix and a random token */
        if (pv[0] == 's' && pv[1] == 't') {
                o = PUTS(o, "pi_3P");
                o = put_token(o, &r, ALNUM, 62, 19);
        } else if (pv[0] == 's') {
                o = PUTS(o, "sq0");
                o = put_token(o, &r, ALNUM, 62, 22);
        } else if (pv[0] == 'p') {
                o = PUTS(o, "PAYID-M");
                o = put_token(o, &r, ALNUM, 36, 17);
        } else if (pv[0] == 'a')
                o = put_token(o, &r, ALNUM, 36, 16);
        else {
                o = PUTS(o, "GC-");
                o = put_token(o, &r, ALNUM, 36, 10);
        }
        TAB(o);
        o = put_money(o, mo.total);
        TAB(o);
        o = PUTS(o, "USD");
        TAB(o);
        bool failed = payment_failed(pk);
        uint32_t step = payment_step(pk, ver);
        const char *st = failed ? "failed" : PAY_STATUS[step];
        o = put(o, st, strlen(st));
        TAB(o);
        bool card = pv[0] != 'g' && pv[0] != 'p';
        if (card) {
                o = put_pick(o, &L_CARD, &r);
                TAB(o);
                o = put_uw(o, rbelow(&r, 10000), 4);
                TAB(o);
                o = put_uw(o, 1 + rbelow(&r, 12), 2);
                *o++ = '/';
                o = put_uw(o, 25 + rbelow(&r, 6), 2);
        } else
                o = PUTS(o, "\\N\t\\N\t\\N");
        TAB(o);
        int64_t c = created_at(&g_t[T_ORDERS], order) + 20 + rbelow(&r, 300);
        o = put_ts(o, c, rbelow(&r, 1000000));
        TAB(o);
        if (!failed && step >= 1) {
                int64_t cap = V_COUNT(ver) ? change_time(V_DAY(ver), &m) : c + 3600 * (12 + rbelow(&r, 20));
                if (step == 2)
                        cap = c + 3600 * (12 + rbelow(&r, 20));
                o = put_ts(o, cap, rbelow(&r, 1000000));
        } else
                o = PUT_NULL(o);
        TAB(o);
        if (failed) {
                const char *f = FAIL_REASONS[rbelow(&r, ARRAY_SIZE(FAIL_REASONS))];
                o = put(o, f, strlen(f));
        } else
                o = PUT_NULL(o);
        TAB(o);
        /* provider metadata, jsonb */
        o = PUTS(o, "{\"three_ds\": ");
        o = card && rbelow(&r, 3) == 0 ? PUTS(o, "true") : PUTS(o, "false");
        o = PUTS(o, ", \"risk_level\": \"");
        const char *rk = RISK[rbelow(&r, ARRAY_SIZE(RISK))];
        o = put(o, rk, strlen(rk));
        o = PUTS(o, "\", \"risk_score\": ");
        o = put_u(o, rbelow(&r, 100));
        if (card) {
                o = PUTS(o, ", \"fingerprint\": \"");
                o = put_token(o, &r, ALNUM, 62, 16);
                *o++ = '"';
        }
        if (step == 2 && !failed) {
                o = PUTS(o, ", \"refund_reason\": \"");
                o = rbelow(&m, 2) ? PUTS(o, "requested_by_customer") : PUTS(o, "damaged_in_transit");
                *o++ = '"';
        }
        *o++ = '}';
        *o++ = '\n';
        return o;
}

static const char *const SERIES_STATUS[] = { "ongoing", "ongoing", "completed", "completed", "completed", "cancelled", "hiatus" };

static char *row_series(char *o, uint32_t pk, uint32_t ver) {
        const Table *t = &g_t[T_SERIES];
        Rng r = rng3(T_SERIES, pk, IMM); /* same stream as put_series_title() */
        Rng m = rng3(T_SERIES, pk, V_COUNT(ver));
        int64_t c = created_at(t, pk);
        int32_t cday = (int32_t) (c / 86400);
        o = put_u(o, pk);
        TAB(o);
        o = put_pick(o, &L_PUBLISHER, &r);
        TAB(o);
        if (rbelow(&r, 4) == 0)
                o = PUTS(o, "The ");
        o = put_pick(o, &L_ADJ, &r);
        *o++ = ' ';
        o = put_pick(o, &L_NOUN, &r);
        TAB(o);
        o = put_u(o, 1 + (rbelow(&r, 3) == 0 ? rbelow(&r, 6) : 0));
        TAB(o);
        o = put_year(o, cday);
        TAB(o);
        const char *st = SERIES_STATUS[rbelow(&m, ARRAY_SIZE(SERIES_STATUS))];
        if (pk > t->nbase && !V_COUNT(ver))
                st = "ongoing";
        if (st[0] == 'c') {
                int32_t end = cday + 365 + (int32_t) rbelow(&m, 900);
                o = put_year(o, end < g_day0 ? end : g_day0);
        }
        else
                o = PUT_NULL(o);
        TAB(o);
        o = put(o, st, strlen(st));
        TAB(o);
        const char *ra = AGE_RATINGS[rbelow(&r, ARRAY_SIZE(AGE_RATINGS))];
        o = put(o, ra, strlen(ra));
        TAB(o);
        o = put_pick(o, &L_GENRE, &r);
        TAB(o);
        o = put_words(o, &r, 15 + rbelow(&r, 40));
        TAB(o);
        uint32_t usec = rbelow(&r, 1000000);
        o = put_ts(o, c, usec);
        TAB(o);
        if (V_COUNT(ver))
                o = put_ts(o, change_time(V_DAY(ver), &m), rbelow(&m, 1000000));
        else
                o = put_ts(o, c, usec);
        *o++ = '\n';
        return o;
}

typedef char *(*RowFn)(char *o, uint32_t pk, uint32_t ver);
static const RowFn ROW_FNS[T_COUNT] = {
        [T_ADDRESSES] = row_addresses,
        [T_CUSTOMERS] = row_customers,
        [T_EVENT_LOG] = row_event_log,
        [T_INVENTORY] = row_inventory,
        [T_ISSUES] = row_issues,
        [T_ORDER_ITEMS] = row_order_items,
        [T_ORDERS] = row_orders,
        [T_PAYMENTS] = row_payments,
        [T_SERIES] = row_series,
};

/* ---- sizing and the base (day 0) ----------------------------------------------------- */

/* Share of the day-0 dump by table family, and the mean bytes per parent
 * row including its children, as measured with this generator; the size
 * of the dump follows --size-mb (MiB) within a few percent. */
typedef struct Sizing {
        int table;
        double share;
        double rowlen;
} Sizing;

static const Sizing SIZING[] = {
        { T_CUSTOMERS, 0.055, 482.6 + 1.434 * 181.3 },                 /* with addresses */
        { T_EVENT_LOG, 0.40, 357.8 },
        { T_ISSUES, 0.23, 747.0 + 0.418 * 127.1 + 349.9 / 24.0 },      /* with inventory, series */
        { T_ORDERS, 0.315, 322.9 + 225.6 + 2.42 * 112.9 },             /* with payment, items */
};
#define SERIES_PER_ISSUE (1.0 / 24.0)

static void base_init(uint64_t size_mb) {
        double bytes = (double) size_mb * 1048576.0;
        for (size_t i = 0; i < ARRAY_SIZE(SIZING); i++) {
                double n = bytes * SIZING[i].share / SIZING[i].rowlen;
                g_t[SIZING[i].table].nbase = n < 10 ? 10 : (uint32_t) n;
        }
        g_t[T_SERIES].nbase = (uint32_t) (g_t[T_ISSUES].nbase * SERIES_PER_ISSUE) + 5;

        Rng r = rng3(0xba5e, 0, 0);
        static const uint8_t ADDR_W[] = { 64, 28, 8 };
        static const uint8_t ITEM_W[] = { 40, 24, 14, 9, 6, 4, 2, 1 };
        /* Stock lines (0..3 per issue): most of the back catalogue is no
         * longer stocked, the last fifth (the last year) mostly is. */
        static const uint8_t INV_OLD_W[] = { 82, 15, 2, 1 }, INV_NEW_W[] = { 15, 55, 24, 6 };
        uint32_t nc = g_t[T_CUSTOMERS].nbase, no = g_t[T_ORDERS].nbase, ni = g_t[T_ISSUES].nbase;
        g_cust_addr = make_children(&r, nc, 1, ADDR_W, ADDR_W, nc + 1, sizeof ADDR_W);
        g_order_items = make_children(&r, no, 1, ITEM_W, ITEM_W, no + 1, sizeof ITEM_W);
        g_issue_inv = make_children(&r, ni, 0, INV_OLD_W, INV_NEW_W, ni - ni / 5, sizeof INV_OLD_W);
        g_t[T_ADDRESSES].nbase = g_cust_addr[g_t[T_CUSTOMERS].nbase + 1] - 1;
        g_t[T_ORDER_ITEMS].nbase = g_order_items[g_t[T_ORDERS].nbase + 1] - 1;
        g_t[T_INVENTORY].nbase = g_issue_inv[g_t[T_ISSUES].nbase + 1] - 1;
        g_t[T_PAYMENTS].nbase = g_t[T_ORDERS].nbase;

        for (int i = 0; i < T_COUNT; i++) {
                Table *t = &g_t[i];
                if (!t->spp)
                        t->spp = SLOTS_PER_PAGE;
                t->n = t->nbase;
                table_grow(t, t->nbase + t->nbase / 8 + 1024);
                if (g_physical) {
                        /* Day 0 is years into production, not a fresh load:
                         * tables that see updates carry the free space their
                         * past updates left, scattered over the heap. */
                        Rng b = rng3(0xb10a7, (uint64_t) i, 0);
                        /* last night's VACUUM freed the rows purged yesterday */
                        for (uint32_t k = i == T_EVENT_LOG ? t->nbase / (uint32_t) t->span : 0; k; k--) {
                                uint32_t s = heap_append(t);
                                t->freemap[s / 64] |= 1ull << (s % 64);
                        }
                        for (uint32_t pk = 1; pk <= t->nbase; pk++) {
                                while (rbelow(&b, 100000) < t->bloat) {
                                        uint32_t s = heap_append(t);
                                        t->freemap[s / 64] |= 1ull << (s % 64);
                                }
                                heap_place(t, pk, heap_append(t));
                        }
                }
        }
}

/* ---- one business day ----------------------------------------------------------------- */

static void new_customer(int d, Rng *r, uint32_t *ret_cust, uint32_t *ret_addr) {
        Table *c = &g_t[T_CUSTOMERS], *a = &g_t[T_ADDRESSES];
        uint32_t naddr = 1 + (rbelow(r, 100) < 25);
        uint32_t cust = c->n + 1, first = a->n + 1;
        row_insert(c, d, xref_pack(0, first, naddr));
        for (uint32_t i = 0; i < naddr; i++)
                row_insert(a, d, cust);
        *ret_cust = cust;
        *ret_addr = first;
}

static void new_event(int d, uint32_t xref) {
        row_insert(&g_t[T_EVENT_LOG], d, xref);
}

static bool in_set(const uint32_t *v, uint32_t n, uint32_t x) {
        for (uint32_t i = 0; i < n; i++)
                if (v[i] == x)
                        return true;
        return false;
}

/* Customer of every order and event, computed once (rows never change
 * customer), for the erasure scans. */
static uint32_t *g_order_cust, *g_event_cust;
static uint32_t g_order_cust_n, g_event_cust_n;

static void customer_cache(void) {
        const Table *o = &g_t[T_ORDERS], *ev = &g_t[T_EVENT_LOG];
        if (g_order_cust_n < o->n) {
                g_order_cust = xrealloc(g_order_cust, (size_t) o->cap * sizeof *g_order_cust);
                for (uint32_t pk = g_order_cust_n + 1; pk <= o->n; pk++)
                        g_order_cust[pk - 1] = order_customer(pk);
                g_order_cust_n = o->n;
        }
        if (g_event_cust_n < ev->n) {
                g_event_cust = xrealloc(g_event_cust, (size_t) ev->cap * sizeof *g_event_cust);
                for (uint32_t pk = g_event_cust_n + 1; pk <= ev->n; pk++) {
                        Rng s;
                        uint64_t sid;
                        uint32_t xr;
                        g_event_cust[pk - 1] = event_session(pk, &s, &sid, &xr);
                }
                g_event_cust_n = ev->n;
        }
}

static void erase_customers(int d, const uint32_t *c, uint32_t n) {
        Table *cust = &g_t[T_CUSTOMERS], *addr = &g_t[T_ADDRESSES], *orders = &g_t[T_ORDERS];
        Table *ev = &g_t[T_EVENT_LOG];
        for (uint32_t i = 0; i < n; i++) {
                row_erase(cust, d, c[i]);
                uint32_t first, k;
                if (c[i] <= cust->nbase)
                        first = g_cust_addr[c[i]], k = g_cust_addr[c[i] + 1] - first;
                else
                        first = XREF_FIRST(xref_get(cust, c[i])), k = XREF_N(xref_get(cust, c[i]));
                for (uint32_t a = first; a < first + k; a++)
                        row_delete(addr, a);
        }
        for (uint32_t a = addr->nbase + 1; a <= addr->n; a++)
                if (row_alive(addr, a) && in_set(c, n, address_customer(a)))
                        row_delete(addr, a);
        customer_cache();
        for (uint32_t o = 1; o <= orders->n; o++)
                if (in_set(c, n, g_order_cust[o - 1]))
                        row_erase(orders, d, o);
        for (uint32_t e = 1; e <= ev->n; e++)
                if (in_set(c, n, g_event_cust[e - 1]))
                        row_erase(ev, d, e);
}

static uint32_t *g_day_orders;
static size_t g_day_orders_n, g_day_orders_cap;

static void new_order(int d, Rng *r) {
        Table *orders = &g_t[T_ORDERS], *items = &g_t[T_ORDER_ITEMS], *inv = &g_t[T_INVENTORY];
        Table *cust = &g_t[T_CUSTOMERS];
        uint32_t c, addr;
        if (rbelow(r, 100) < 12)
                new_customer(d, r, &c, &addr);
        else {
                c = row_random(cust, r);
                if (c && (cust->ver[c - 1] & V_ERASED))
                        c = row_random(cust, r);
                if (!c || (cust->ver[c - 1] & V_ERASED))
                        return;
                row_update(cust, d, c); /* last login, loyalty points */
        }
        static const uint8_t NITEMS[] = { 40, 24, 14, 9, 6, 4, 2, 1 };
        uint32_t x = rbelow(r, 100), n = 0;
        while (x >= NITEMS[n]) {
                x -= NITEMS[n];
                n++;
        }
        n++;
        uint32_t o = orders->n + 1, first = items->n + 1;
        row_insert(orders, d, xref_pack(c, first, n));
        for (uint32_t i = 0; i < n; i++) {
                uint32_t issue = pick_sold_issue(r, g_t[T_ISSUES].n);
                row_insert(items, d, (uint64_t) o | (uint64_t) issue << 32);
                /* sold from stock */
                uint32_t f, k;
                issue_inventory_range(issue, &f, &k);
                if (k)
                        row_update(inv, d, f + rbelow(r, k));
        }
        if (rbelow(r, 100) < 3) /* a declined card first */
                row_insert(&g_t[T_PAYMENTS], d, o);
        row_insert(&g_t[T_PAYMENTS], d, o);
        /* its order_placed event is logged among the day's events */
        if (g_day_orders_n == g_day_orders_cap) {
                g_day_orders_cap = g_day_orders_cap ? 2 * g_day_orders_cap : 1024;
                g_day_orders = xrealloc(g_day_orders, g_day_orders_cap * sizeof *g_day_orders);
        }
        g_day_orders[g_day_orders_n++] = o;
}

/* First pk of t created on or after absolute day `day`. */
static uint32_t first_pk_since(const Table *t, int32_t day) {
        if (day >= g_day0 + 1) {
                int dd = day - g_day0;
                return dd <= g_days ? t->day_first[dd] : t->n + 1;
        }
        int64_t start = (int64_t) (g_day0 - t->span) * 86400, ts = (int64_t) day * 86400;
        if (ts <= start)
                return 1;
        uint64_t pk = (uint64_t) (ts - start) * t->nbase / ((uint64_t) t->span * 86400);
        while (pk > 1 && created_at(t, (uint32_t) pk) >= ts)
                pk--;
        if (pk < 1)
                pk = 1;
        while (pk <= t->nbase && created_at(t, (uint32_t) pk) < ts)
                pk++;
        return (uint32_t) pk;
}

static void simulate_day(int d) {
        Rng r = rng3(0xda7, (uint64_t) d, 0);
        int32_t today = g_day0 + d;
        int wd = weekday(today);
        static const double ORDER_WF[7] = { 0.9, 0.9, 1.3, 1.0, 1.0, 1.2, 0.8 };
        const double wf = ORDER_WF[wd];

        for (int i = 0; i < T_COUNT; i++) {
                Table *t = &g_t[i];
                if (g_physical)
                        heap_vacuum(t); /* last night's VACUUM */
                t->day_first = xrealloc(t->day_first, ((size_t) d + 2) * sizeof *t->day_first);
                t->day_first[d] = t->n + 1;
                t->ins = t->upd = t->del = 0;
        }
        g_days = d;

        Table *series = &g_t[T_SERIES], *issues = &g_t[T_ISSUES], *inv = &g_t[T_INVENTORY];
        Table *cust = &g_t[T_CUSTOMERS], *addr = &g_t[T_ADDRESSES], *orders = &g_t[T_ORDERS];
        Table *items = &g_t[T_ORDER_ITEMS], *pay = &g_t[T_PAYMENTS], *ev = &g_t[T_EVENT_LOG];

        /* Catalogue: the week's releases arrive on Wednesday (solicited
         * earlier, so they show up as preorders the Monday before). */
        uint32_t nseries = rcount(&r, series->nbase * (wd == 0 ? 0.004 : 0.0002));
        for (uint32_t i = 0; i < nseries; i++)
                row_insert(series, d, 0);
        uint32_t nissue = rcount(&r, issues->nbase * (wd == 0 ? 0.0035 : 0.0003));
        for (uint32_t i = 0; i < nissue; i++) {
                uint32_t s = series->n - (uint32_t) (series->n * runit(&r) * runit(&r) * runit(&r));
                uint32_t k = 1 + (rbelow(&r, 100) < 45) + (rbelow(&r, 100) < 10);
                uint32_t is = issues->n + 1;
                row_insert(issues, d, xref_pack(s ? s : 1, inv->n + 1, k));
                for (uint32_t j = 0; j < k; j++)
                        row_insert(inv, d, is);
        }
        /* Release day: this week's issues leave preorder. */
        for (uint32_t i = first_pk_since(issues, today - 7); i <= issues->n; i++)
                if (issue_release(i) == today)
                        row_update(issues, d, i);
        for (uint32_t i = rcount(&r, series->nbase * 0.002); i; i--)
                row_update(series, d, row_random(series, &r));
        /* Price corrections, sold-out and back-order flags: mostly the
         * current quarter's releases, rarely the back catalogue. */
        uint32_t recent_issues = first_pk_since(issues, today - 90);
        for (uint32_t i = rcount(&r, issues->nbase * 0.0010); i; i--)
                row_update(issues, d, row_random_since(issues, recent_issues, &r));
        for (uint32_t i = rcount(&r, issues->nbase * 0.0008); i; i--)
                row_update(issues, d, row_random(issues, &r));

        /* Customers and addresses outside of orders. */
        for (uint32_t i = rcount(&r, cust->nbase * 0.0004); i; i--) {
                uint32_t c, a;
                new_customer(d, &r, &c, &a);
        }
        /* logins (last_login_at), profile and pull-list edits */
        for (uint32_t i = rcount(&r, cust->nbase * 0.0003); i; i--) {
                uint32_t c = row_random(cust, &r);
                if (c && !(cust->ver[c - 1] & V_ERASED))
                        row_update(cust, d, c);
        }
        /* Right-to-erasure requests: the account is anonymised (orders
         * keep their foreign key), its addresses deleted, its orders and
         * events stripped of personal data, wherever they are. */
        uint32_t erase[16], nerase = 0;
        for (uint32_t i = rcount(&r, cust->nbase * 0.00005); i && nerase < ARRAY_SIZE(erase); i--) {
                uint32_t c = row_random(cust, &r);
                if (c && !(cust->ver[c - 1] & V_ERASED))
                        erase[nerase++] = c;
        }
        if (nerase)
                erase_customers(d, erase, nerase);
        /* moves and corrections: a few percent of the addresses a year */
        for (uint32_t i = rcount(&r, addr->nbase * 0.0003); i; i--)
                row_update(addr, d, row_random(addr, &r));
        for (uint32_t i = rcount(&r, addr->nbase * 0.0001); i; i--) {
                uint32_t a = row_random(addr, &r);
                if (a && customer_address(address_customer(a)) != a) /* orders refer to the first */
                        row_delete(addr, a);
        }
        for (uint32_t i = rcount(&r, addr->nbase * 0.0002); i; i--)
                row_insert(addr, d, 1 + rbelow(&r, cust->n));

        /* Orders of the last twelve days move along their path. */
        uint32_t from = first_pk_since(orders, today - 12), to = orders->n;
        for (uint32_t o = from; o <= to; o++) {
                if (!row_alive(orders, o))
                        continue;
                uint32_t len, step = order_step(o, orders->ver[o - 1], &len);
                if (step + 1 < len && rbelow(&r, 100) < 70)
                        row_update(orders, d, o);
        }
        /* Payments of the last three days are captured, a few refunded. */
        from = first_pk_since(pay, today - 3);
        for (uint32_t p = from; p <= pay->n; p++) {
                if (!row_alive(pay, p) || payment_failed(p))
                        continue;
                if (payment_step(p, pay->ver[p - 1]) == 0 && rbelow(&r, 100) < 85)
                        row_update(pay, d, p);
        }
        /* refunds: within the 60-day return window */
        uint32_t recent_pay = first_pk_since(pay, today - 60);
        for (uint32_t i = rcount(&r, pay->nbase * 0.0002); i; i--) {
                uint32_t p = row_random_since(pay, recent_pay, &r);
                if (p && !payment_failed(p) && payment_step(p, pay->ver[p - 1]) == 1)
                        row_update(pay, d, p);
        }
        /* chargebacks: card networks allow disputes long after the sale */
        for (uint32_t i = rcount(&r, pay->nbase * 0.00004); i; i--) {
                uint32_t p = row_random(pay, &r);
                if (p && !payment_failed(p) && payment_step(p, pay->ver[p - 1]) == 1)
                        row_update(pay, d, p);
        }
        /* Customer service on old orders: late returns of a line, address
         * and note corrections. */
        for (uint32_t i = rcount(&r, orders->nbase * 0.0002); i; i--)
                row_update(orders, d, row_random(orders, &r));
        for (uint32_t i = rcount(&r, items->nbase * 0.00006); i; i--) {
                uint32_t it = row_random(items, &r);
                if (it && !V_COUNT(items->ver[it - 1]))
                        row_update(items, d, it);
        }

        /* Today's orders: an established shop, the table holds five years of
         * slowly growing business. */
        uint32_t norders = rcount(&r, orders->nbase * 0.0009 * wf);
        for (uint32_t i = 0; i < norders; i++)
                new_order(d, &r);
        /* lines removed from orders not yet shipped */
        uint32_t recent_items = first_pk_since(items, today - 2);
        for (uint32_t i = rcount(&r, items->nbase * 0.00003); i; i--)
                row_delete(items, row_random_since(items, recent_items, &r));

        /* Stock: counts, restocks, pull-list reservations, corrections;
         * a few lines dropped. */
        for (uint32_t i = rcount(&r, inv->nbase * 0.16); i; i--)
                row_update(inv, d, row_random(inv, &r));
        for (uint32_t i = rcount(&r, inv->nbase * 0.0003); i; i--)
                row_delete(inv, row_random(inv, &r));

        /* Event log: today's events, and the retention purge. */
        uint32_t nev = rcount(&r, ev->nbase / (double) ev->span * wf * (0.9 + 0.2 * runit(&r)));
        size_t left = nev + g_day_orders_n, oi = 0;
        for (; left; left--) {
                if (oi < g_day_orders_n && rbelow(&r, (uint32_t) left) < g_day_orders_n - oi)
                        new_event(d, XREF_EV_ORDER | g_day_orders[oi++]);
                else
                        new_event(d, 0);
        }
        g_day_orders_n = 0;
        static uint32_t purge_pk = 1;
        int32_t cutoff = today - ev->span;
        while (purge_pk <= ev->n && created_day(ev, purge_pk) < cutoff)
                row_delete(ev, purge_pk++);

        for (int i = 0; i < T_COUNT; i++)
                g_t[i].day_first[d + 1] = g_t[i].n + 1;
}

/* ---- the dump -------------------------------------------------------------------------- */

static const char *const DDL[T_COUNT] = {
        [T_ADDRESSES] = "    id bigint NOT NULL,\n    customer_id bigint NOT NULL,\n    kind text NOT NULL,\n"
                        "    recipient text NOT NULL,\n    company text,\n    line1 text NOT NULL,\n    line2 text,\n"
                        "    city text NOT NULL,\n    region text NOT NULL,\n    postal_code text NOT NULL,\n"
                        "    country character(2) NOT NULL,\n    latitude numeric(9,6),\n    longitude numeric(9,6),\n"
                        "    phone text,\n    delivery_instructions text,\n"
                        "    is_default boolean DEFAULT false NOT NULL,\n"
                        "    created_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                        "    updated_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                        "    CONSTRAINT addresses_kind_check CHECK ((kind = ANY (ARRAY['shipping'::text, 'billing'::text])))\n",
        [T_CUSTOMERS] = "    id bigint NOT NULL,\n    username text NOT NULL,\n    first_name text NOT NULL,\n"
                        "    last_name text NOT NULL,\n    email public.citext NOT NULL,\n    password_hash text NOT NULL,\n"
                        "    phone text,\n    birth_date date,\n"
                        "    created_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                        "    last_login_at timestamp with time zone,\n    loyalty_points integer DEFAULT 0 NOT NULL,\n"
                        "    order_count integer DEFAULT 0 NOT NULL,\n    lifetime_spend numeric(12,2) DEFAULT 0 NOT NULL,\n"
                        "    status text DEFAULT 'active'::text NOT NULL,\n    marketing_opt_in boolean DEFAULT false NOT NULL,\n"
                        "    favorite_publisher text,\n    preferences jsonb DEFAULT '{}'::jsonb NOT NULL,\n    notes text,\n"
                        "    updated_at timestamp with time zone DEFAULT now() NOT NULL\n",
        [T_EVENT_LOG] = "    id bigint NOT NULL,\n    occurred_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                        "    customer_id bigint,\n    session_id text,\n    request_id uuid NOT NULL,\n    kind text NOT NULL,\n"
                        "    entity text,\n    entity_id bigint,\n    ip inet,\n    user_agent text,\n"
                        "    payload jsonb DEFAULT '{}'::jsonb NOT NULL\n",
        [T_INVENTORY] = "    id bigint NOT NULL,\n    issue_id bigint NOT NULL,\n    sku text NOT NULL,\n    location text NOT NULL,\n"
                        "    condition text DEFAULT 'NM'::text NOT NULL,\n    qty_on_hand integer DEFAULT 0 NOT NULL,\n"
                        "    qty_reserved integer DEFAULT 0 NOT NULL,\n    reorder_level integer DEFAULT 2 NOT NULL,\n"
                        "    unit_cost numeric(8,2),\n    supplier text,\n    bin text,\n"
                        "    last_counted_at timestamp with time zone,\n"
                        "    updated_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                        "    CONSTRAINT inventory_qty_check CHECK ((qty_on_hand >= 0))\n",
        [T_ISSUES] = "    id bigint NOT NULL,\n    series_id bigint NOT NULL,\n    issue_number text NOT NULL,\n"
                     "    variant text DEFAULT 'A'::text NOT NULL,\n    title text,\n    cover_date date,\n"
                     "    release_date date NOT NULL,\n    foc_date date,\n    cover_price numeric(8,2) NOT NULL,\n"
                     "    upc text,\n    isbn text,\n    order_code text NOT NULL,\n"
                     "    writer text,\n    artist text,\n    colorist text,\n    letterer text,\n    cover_artist text,\n"
                     "    editor text,\n    page_count integer,\n    format text NOT NULL,\n    age_rating text,\n"
                     "    weight_grams integer,\n    status text DEFAULT 'available'::text NOT NULL,\n"
                     "    description text,\n    variant_description text,\n"
                     "    updated_at timestamp with time zone DEFAULT now() NOT NULL\n",
        [T_ORDER_ITEMS] = "    id bigint NOT NULL,\n    order_id bigint NOT NULL,\n    issue_id bigint NOT NULL,\n"
                          "    sku text NOT NULL,\n    title text NOT NULL,\n    condition text DEFAULT 'NM'::text NOT NULL,\n"
                          "    quantity integer NOT NULL,\n    unit_price numeric(10,2) NOT NULL,\n"
                          "    discount numeric(10,2) DEFAULT 0 NOT NULL,\n    tax numeric(10,2) DEFAULT 0 NOT NULL,\n"
                          "    line_total numeric(10,2) NOT NULL,\n    returned_qty integer DEFAULT 0 NOT NULL,\n"
                          "    created_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                          "    CONSTRAINT order_items_quantity_check CHECK ((quantity > 0))\n",
        [T_ORDERS] = "    id bigint NOT NULL,\n    customer_id bigint NOT NULL,\n    shipping_address_id bigint,\n"
                     "    status public.order_status DEFAULT 'pending'::public.order_status NOT NULL,\n"
                     "    placed_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                     "    updated_at timestamp with time zone DEFAULT now() NOT NULL,\n    item_count integer NOT NULL,\n"
                     "    subtotal numeric(10,2) NOT NULL,\n    tax numeric(10,2) NOT NULL,\n"
                     "    shipping_fee numeric(10,2) DEFAULT 0 NOT NULL,\n    total numeric(10,2) NOT NULL,\n"
                     "    currency character(3) DEFAULT 'USD'::bpchar NOT NULL,\n    channel text NOT NULL,\n"
                     "    coupon_code text,\n    customer_email public.citext NOT NULL,\n    ship_name text,\n"
                     "    ship_line1 text,\n    ship_line2 text,\n    ship_city text,\n    ship_region text,\n"
                     "    ship_postal_code text,\n    ship_country character(2),\n    shipping_method text NOT NULL,\n"
                     "    tracking_number text,\n    client_ip inet,\n    user_agent text,\n    notes text\n",
        [T_PAYMENTS] = "    id bigint NOT NULL,\n    order_id bigint NOT NULL,\n    provider text NOT NULL,\n"
                       "    provider_ref text NOT NULL,\n    amount numeric(10,2) NOT NULL,\n"
                       "    currency character(3) DEFAULT 'USD'::bpchar NOT NULL,\n    status text NOT NULL,\n"
                       "    card_brand text,\n    card_last4 character(4),\n    card_exp text,\n"
                       "    created_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                       "    captured_at timestamp with time zone,\n    failure_reason text,\n"
                       "    metadata jsonb DEFAULT '{}'::jsonb NOT NULL\n",
        [T_SERIES] = "    id bigint NOT NULL,\n    publisher text NOT NULL,\n    title text NOT NULL,\n"
                     "    volume integer DEFAULT 1 NOT NULL,\n    start_year integer,\n    end_year integer,\n"
                     "    status text DEFAULT 'ongoing'::text NOT NULL,\n    age_rating text,\n    genre text,\n"
                     "    description text,\n"
                     "    created_at timestamp with time zone DEFAULT now() NOT NULL,\n"
                     "    updated_at timestamp with time zone DEFAULT now() NOT NULL\n",
};

static void dump_header(void) {
        out_text("--\n-- PostgreSQL database dump\n--\n\n"
                 "-- Dumped from database version 16.4 (Debian 16.4-1.pgdg120+2)\n"
                 "-- Dumped by pg_dump version 16.4 (Debian 16.4-1.pgdg120+2)\n\n"
                 "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n"
                 "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
                 "SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n"
                 "SET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\n"
                 "--\n-- Name: citext; Type: EXTENSION; Schema: -; Owner: -\n--\n\n"
                 "CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;\n\n\n"
                 "--\n-- Name: EXTENSION citext; Type: COMMENT; Schema: -; Owner: \n--\n\n"
                 "COMMENT ON EXTENSION citext IS 'data type for case-insensitive character strings';\n\n\n"
                 "--\n-- Name: order_status; Type: TYPE; Schema: public; Owner: shop\n--\n\n"
                 "CREATE TYPE public.order_status AS ENUM (\n    'pending',\n    'paid',\n    'processing',\n"
                 "    'shipped',\n    'delivered',\n    'cancelled',\n    'refunded'\n);\n\n\n"
                 "ALTER TYPE public.order_status OWNER TO shop;\n\n"
                 "SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n");
        for (int i = 0; i < T_COUNT; i++) {
                const char *n = g_t[i].name;
                out_printf("--\n-- Name: %s; Type: TABLE; Schema: public; Owner: shop\n--\n\n"
                           "CREATE TABLE public.%s (\n", n, n);
                out_text(DDL[i]);
                out_printf(");\n\n\nALTER TABLE public.%s OWNER TO shop;\n\n", n);
                out_printf("--\n-- Name: %s_id_seq; Type: SEQUENCE; Schema: public; Owner: shop\n--\n\n"
                           "CREATE SEQUENCE public.%s_id_seq\n    START WITH 1\n    INCREMENT BY 1\n"
                           "    NO MINVALUE\n    NO MAXVALUE\n    CACHE 1;\n\n\n"
                           "ALTER SEQUENCE public.%s_id_seq OWNER TO shop;\n\n"
                           "--\n-- Name: %s_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: shop\n--\n\n"
                           "ALTER SEQUENCE public.%s_id_seq OWNED BY public.%s.id;\n\n\n",
                           n, n, n, n, n, n);
        }
        for (int i = 0; i < T_COUNT; i++) {
                const char *n = g_t[i].name;
                out_printf("--\n-- Name: %s id; Type: DEFAULT; Schema: public; Owner: shop\n--\n\n"
                           "ALTER TABLE ONLY public.%s ALTER COLUMN id SET DEFAULT nextval('public.%s_id_seq'::regclass);\n\n\n",
                           n, n, n);
        }
}

static void dump_table(Table *t, RowFn fn) {
        out_printf("--\n-- Data for Name: %s; Type: TABLE DATA; Schema: public; Owner: shop\n--\n\n"
                   "COPY public.%s (%s) FROM stdin;\n", t->name, t->name, t->cols);
        uint64_t before = g_total_bytes + g_olen, rows = 0;
        if (g_physical) {
                for (uint32_t s = 0; s < t->nslots; s++) {
                        uint32_t pk = t->heap[s];
                        if (!pk)
                                continue;
                        out_end(fn(out_begin(), pk, t->ver[pk - 1]));
                        rows++;
                }
        } else {
                for (uint32_t pk = 1; pk <= t->n; pk++) {
                        uint32_t v = t->ver[pk - 1];
                        if (v & V_DEAD)
                                continue;
                        out_end(fn(out_begin(), pk, v));
                        rows++;
                }
        }
        t->rows = rows;
        t->bytes = g_total_bytes + g_olen - before;
        out_text("\\.\n\n\n");
}

static const char *const FKEYS[][3] = {
        { "addresses", "customer_id", "customers" },
        { "event_log", "customer_id", "customers" },
        { "inventory", "issue_id", "issues" },
        { "issues", "series_id", "series" },
        { "order_items", "issue_id", "issues" },
        { "order_items", "order_id", "orders" },
        { "orders", "customer_id", "customers" },
        { "orders", "shipping_address_id", "addresses" },
        { "payments", "order_id", "orders" },
};

static const char *const INDEXES[][2] = {
        { "addresses", "customer_id" },
        { "customers", "email" },
        { "event_log", "occurred_at" },
        { "event_log", "customer_id" },
        { "inventory", "issue_id" },
        { "issues", "series_id" },
        { "issues", "release_date" },
        { "order_items", "order_id" },
        { "orders", "customer_id" },
        { "orders", "placed_at" },
        { "payments", "order_id" },
};

static void dump_footer(void) {
        for (int i = 0; i < T_COUNT; i++) {
                const char *n = g_t[i].name;
                out_printf("--\n-- Name: %s_id_seq; Type: SEQUENCE SET; Schema: public; Owner: shop\n--\n\n"
                           "SELECT pg_catalog.setval('public.%s_id_seq', %" PRIu32 ", true);\n\n\n",
                           n, n, g_t[i].n);
        }
        for (int i = 0; i < T_COUNT; i++) {
                const char *n = g_t[i].name;
                out_printf("--\n-- Name: %s %s_pkey; Type: CONSTRAINT; Schema: public; Owner: shop\n--\n\n"
                           "ALTER TABLE ONLY public.%s\n    ADD CONSTRAINT %s_pkey PRIMARY KEY (id);\n\n\n",
                           n, n, n, n);
        }
        for (size_t i = 0; i < ARRAY_SIZE(INDEXES); i++)
                out_printf("--\n-- Name: %s_%s_idx; Type: INDEX; Schema: public; Owner: shop\n--\n\n"
                           "CREATE INDEX %s_%s_idx ON public.%s USING btree (%s);\n\n\n",
                           INDEXES[i][0], INDEXES[i][1], INDEXES[i][0], INDEXES[i][1], INDEXES[i][0], INDEXES[i][1]);
        for (size_t i = 0; i < ARRAY_SIZE(FKEYS); i++)
                out_printf("--\n-- Name: %s %s_%s_fkey; Type: FK CONSTRAINT; Schema: public; Owner: shop\n--\n\n"
                           "ALTER TABLE ONLY public.%s\n    ADD CONSTRAINT %s_%s_fkey FOREIGN KEY (%s) REFERENCES public.%s(id);\n\n\n",
                           FKEYS[i][0], FKEYS[i][0], FKEYS[i][1], FKEYS[i][0], FKEYS[i][0], FKEYS[i][1],
                           FKEYS[i][1], FKEYS[i][2]);
        out_text("--\n-- PostgreSQL database dump complete\n--\n\n");
}

/* ---- main ------------------------------------------------------------------------------- */

static void usage(FILE *f) {
        fprintf(f, "Usage: gendump --size-mb N --day D [--seed S] [--order pk|physical] [--stats]\n"
                   "Writes the PostgreSQL dump of day D of a synthetic comic-book shop to stdout.\n");
}

static uint64_t parse_u64(const char *s, const char *what, uint64_t max) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno || end == s || *end || v > max) {
                fprintf(stderr, "gendump: invalid %s: %s\n", what, s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "size-mb", required_argument, NULL, 'm' },
                { "day", required_argument, NULL, 'd' },
                { "seed", required_argument, NULL, 's' },
                { "order", required_argument, NULL, 'o' },
                { "stats", no_argument, NULL, 'S' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t size_mb = 0, day = 0;
        bool have_size = false, stats = false;
        int c;
        g_seed = 1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'm':
                        size_mb = parse_u64(optarg, "--size-mb", 65536); /* pks stay below 2^28 */
                        have_size = true;
                        break;
                case 'd':
                        day = parse_u64(optarg, "--day", 3650);
                        break;
                case 's':
                        g_seed = parse_u64(optarg, "--seed", UINT64_MAX);
                        break;
                case 'o':
                        if (strcmp(optarg, "pk") == 0)
                                g_physical = false;
                        else if (strcmp(optarg, "physical") == 0)
                                g_physical = true;
                        else {
                                fprintf(stderr, "gendump: --order must be pk or physical, not %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'S':
                        stats = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!have_size || size_mb == 0 || optind != argc) {
                usage(stderr);
                return 2;
        }
        g_seed = mix64(g_seed ^ 0x67656e64756d70ull);

        struct timespec t0, t1, t2;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        lists_init();
        calendar_init();
        base_init(size_mb);
        for (int d = 1; d <= (int) day; d++)
                simulate_day(d);
        clock_gettime(CLOCK_MONOTONIC, &t1);

        dump_header();
        for (int i = 0; i < T_COUNT; i++)
                dump_table(&g_t[i], ROW_FNS[i]);
        dump_footer();
        out_flush();
        clock_gettime(CLOCK_MONOTONIC, &t2);

        if (stats) {
                double sim = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
                double gen = (double) (t2.tv_sec - t1.tv_sec) + (double) (t2.tv_nsec - t1.tv_nsec) / 1e9;
                uint64_t rows = 0, changed = 0;
                fprintf(stderr, "%-12s %10s %12s %7s %9s %9s %9s\n", "table", "rows", "bytes", "B/row", "inserted", "updated", "deleted");
                for (int i = 0; i < T_COUNT; i++) {
                        const Table *t = &g_t[i];
                        fprintf(stderr, "%-12s %10" PRIu64 " %12" PRIu64 " %7.1f %9" PRIu64 " %9" PRIu64 " %9" PRIu64 "\n",
                                t->name, t->rows, t->bytes, t->rows ? (double) t->bytes / (double) t->rows : 0.0,
                                t->ins, t->upd, t->del);
                        rows += t->rows;
                        changed += t->ins + t->upd + t->del;
                }
                fprintf(stderr, "day %" PRIu64 ": %" PRIu64 " rows, %" PRIu64 " bytes; day's changes %.2f%% of rows; "
                                "simulation %.2fs, output %.2fs (%.0f MB/s)\n",
                        day, rows, g_total_bytes, rows ? 100.0 * (double) changed / (double) rows : 0.0, sim, gen,
                        (double) g_total_bytes / 1e6 / gen);
        }
        return 0;
}
