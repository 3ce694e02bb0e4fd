//! The Nexmark event generator: event `n` of a run (counted from 0 over all subtasks) is a
//! pure function of `n` and the configuration, so a run yields the same events at any
//! parallelism, after any restore, and in `sluice nexmark generate`'s files.
//!
//! The shape follows the reference generator of the nexmark/nexmark repository (the one
//! Flink's, Arroyo's and RisingWave's benchmarks use): event ids, the person / auction / bid
//! mix, hot sellers, auctions and bidders, in-flight auctions, active people, prices as
//! `10^(6u) * 100` cents, the word lists, `extra` padding to the average sizes, channels
//! and URLs, and timestamps `base + n * 1e6 / rate` microseconds. It differs where the
//! reference cannot be reproduced: the reference draws from one unseeded random generator
//! per reader, so no two runs agree; here each event draws from its own generator seeded
//! by its id, and the channel and URL table from a fixed seed. The reference also adds
//! the person id offset twice to a bid's bidder (so bidders never name existing people);
//! here it is added once.

use std::sync::OnceLock;

/// The first person id.
pub const FIRST_PERSON_ID: i64 = 1000;
/// The first auction id.
pub const FIRST_AUCTION_ID: i64 = 1000;
/// The first category id (categories are 10 to 14).
pub const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
/// Person ids drawn for sellers and bidders run this far past the last person.
const PERSON_ID_LEAD: i64 = 10;
/// Auction ids drawn for bids run this far past the last auction.
const AUCTION_ID_LEAD: i64 = 10;
/// Hot ids are multiples of these.
const HOT_SELLER_RATIO: i64 = 100;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const CHANNELS: usize = 10_000;
const MIN_STRING_LENGTH: i32 = 3;
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] =
    ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
/// The seed of the channel and URL table.
const CHANNEL_SEED: i64 = 0x004E_4558_4D41_524B;

/// What the generator makes, and how fast its timestamps advance.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Events per second of event time over all subtasks (`first-event.rate`).
    pub rate: f64,
    /// Events in all (`events.num`); `None`: unbounded.
    pub max_events: Option<u64>,
    /// The timestamp of event 0, in epoch milliseconds.
    pub base_time_ms: i64,
    /// Of every `person + auction + bid` events, this many are people...
    pub person_proportion: u32,
    /// ...this many auctions...
    pub auction_proportion: u32,
    /// ...and this many bids.
    pub bid_proportion: u32,
    /// Average bytes of a person, an auction and a bid (`extra` pads them).
    pub avg_person_bytes: u32,
    /// See `avg_person_bytes`.
    pub avg_auction_bytes: u32,
    /// See `avg_person_bytes`.
    pub avg_bid_bytes: u32,
    /// One bid in this many is on a random open auction, the others on a hot one.
    pub hot_auction_ratio: u32,
    /// One bid in this many is by a random active person, the others by a hot one.
    pub hot_bidders_ratio: u32,
    /// One auction in this many is by a random active person, the others by a hot seller.
    pub hot_sellers_ratio: u32,
    /// People recent enough to sell and bid.
    pub num_active_people: i64,
    /// Auctions open at once.
    pub num_in_flight_auctions: i64,
    /// Events are shuffled within groups of this many (1: in order).
    pub out_of_order_group_size: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate: 10_000.0,
            max_events: None,
            base_time_ms: 0,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            avg_person_bytes: 200,
            avg_auction_bytes: 500,
            avg_bid_bytes: 100,
            hot_auction_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            out_of_order_group_size: 1,
        }
    }
}

/// The three kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new person.
    Person,
    /// A new auction.
    Auction,
    /// A bid on an auction.
    Bid,
}

impl EventKind {
    /// The kind's table name: `person`, `auction` or `bid`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }
}

/// A person event.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// Person id.
    pub id: i64,
    /// First and last name.
    pub name: String,
    /// E-mail address.
    pub email_address: String,
    /// Credit card number, four groups of four digits.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state.
    pub state: String,
    /// Event time (epoch ms).
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// An auction event.
#[derive(Debug, Clone, PartialEq)]
pub struct Auction {
    /// Auction id.
    pub id: i64,
    /// Item name.
    pub item_name: String,
    /// Item description.
    pub description: String,
    /// First bid, in cents.
    pub initial_bid: i64,
    /// Reserve price, in cents.
    pub reserve: i64,
    /// Event time (epoch ms).
    pub date_time: i64,
    /// When the auction ends (epoch ms).
    pub expires: i64,
    /// The selling person's id.
    pub seller: i64,
    /// Category id.
    pub category: i64,
    /// Padding.
    pub extra: String,
}

/// A bid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Bid {
    /// The auction bid on.
    pub auction: i64,
    /// The bidding person's id.
    pub bidder: i64,
    /// Price, in cents.
    pub price: i64,
    /// Where the bid came from.
    pub channel: String,
    /// The page it was made on.
    pub url: String,
    /// Event time (epoch ms).
    pub date_time: i64,
    /// Padding.
    pub extra: String,
}

/// One generated event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A person.
    Person(Person),
    /// An auction.
    Auction(Auction),
    /// A bid.
    Bid(Bid),
}

/// SplitMix64 with Java's `SplittableRandom` bounded draws (the reference generator's
/// random numbers).
struct SplitRandom {
    seed: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mix32(mut z: u64) -> i32 {
    z = (z ^ (z >> 33)).wrapping_mul(0x62a9_d9ed_7997_05f5);
    ((z ^ (z >> 28)).wrapping_mul(0xcb24_d0a5_c88c_35b3) >> 32) as i32
}

impl SplitRandom {
    fn new(seed: i64) -> Self {
        SplitRandom { seed: seed as u64 }
    }

    fn next_seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(GOLDEN_GAMMA);
        self.seed
    }

    fn next_i32(&mut self) -> i32 {
        mix32(self.next_seed())
    }

    fn next_i64(&mut self) -> i64 {
        mix64(self.next_seed()) as i64
    }

    fn next_f64(&mut self) -> f64 {
        (mix64(self.next_seed()) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..bound` (`bound` > 0), without modulo bias.
    fn below(&mut self, bound: i32) -> i32 {
        let mask = bound - 1;
        let r = self.next_i32();
        if bound & mask == 0 {
            return r & mask;
        }
        let mut u = ((r as u32) >> 1) as i32;
        loop {
            let r = u % bound;
            if u.wrapping_add(mask).wrapping_sub(r) >= 0 {
                return r;
            }
            u = ((self.next_i32() as u32) >> 1) as i32;
        }
    }

    /// Uniform in `0..bound` for a possibly large `bound` (> 0).
    fn below_long(&mut self, bound: i64) -> i64 {
        if bound < i64::from(i32::MAX) {
            i64::from(self.below(bound as i32))
        } else {
            (self.next_i64() % bound).abs()
        }
    }

    /// A price in cents: 10^(6u) dollars' worth of cents, 100 to 100,000,000.
    fn price(&mut self) -> i64 {
        (10f64.powf(self.next_f64() * 6.0) * 100.0).round() as i64
    }

    /// A word of 3 to `max_length - 1` letters, with `special` instead of a letter now and
    /// then, trimmed of spaces.
    fn string(&mut self, max_length: i32, special: char) -> String {
        let length = MIN_STRING_LENGTH + self.below(max_length - MIN_STRING_LENGTH);
        let mut out = String::with_capacity(length as usize);
        for _ in 0..length {
            if self.below(13) == 0 {
                out.push(special);
            } else {
                out.push((b'a' + self.below(26) as u8) as char);
            }
        }
        out.trim_matches(' ').to_string()
    }

    /// Exactly `length` letters, six from each draw.
    fn exact_string(&mut self, length: usize) -> String {
        let mut out = String::with_capacity(length);
        let (mut bits, mut left) = (0i32, 0);
        for _ in 0..length {
            if left == 0 {
                bits = self.next_i32();
                left = 6;
            }
            out.push((i32::from(b'a') + bits % 26) as u8 as char);
            bits /= 26;
            left -= 1;
        }
        out
    }

    /// Padding that brings an event of `current` bytes to `desired` on average (±20%).
    fn extra(&mut self, current: usize, desired: u32) -> String {
        let desired = desired as i64;
        let current = current as i64;
        if current > desired {
            return String::new();
        }
        let average = desired - current;
        let delta = (average as f64 * 0.2).round() as i64;
        let size = average - delta + if delta == 0 { 0 } else { i64::from(self.below((2 * delta) as i32)) };
        self.exact_string(size as usize)
    }
}

/// The channel names and URLs bids come from: four hot ones, and a table of 10,000.
struct Channels {
    hot_urls: Vec<String>,
    table: Vec<(String, String)>,
}

fn base_url(rng: &mut SplitRandom) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        rng.string(5, '_'),
        rng.string(5, '_'),
        rng.string(5, '_')
    )
}

fn channels() -> &'static Channels {
    static CHANNELS_TABLE: OnceLock<Channels> = OnceLock::new();
    CHANNELS_TABLE.get_or_init(|| {
        let mut rng = SplitRandom::new(CHANNEL_SEED);
        let hot_urls = (0..HOT_CHANNELS.len()).map(|_| base_url(&mut rng)).collect();
        let table = (0..CHANNELS)
            .map(|i| {
                let mut url = base_url(&mut rng);
                if rng.below(10) > 0 {
                    let id = i64::from((i as u32).reverse_bits() as i32).abs();
                    url.push_str(&format!("&channel_id={id}"));
                }
                (format!("channel-{i}"), url)
            })
            .collect();
        Channels { hot_urls, table }
    })
}

/// Generates the events of one configuration.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    total_proportion: i64,
    delay_us: f64,
}

impl Generator {
    /// A generator of `config`'s events.
    pub fn new(config: GeneratorConfig) -> Self {
        let total_proportion =
            i64::from(config.person_proportion + config.auction_proportion + config.bid_proportion).max(1);
        let delay_us = 1_000_000.0 / config.rate;
        Generator { config, total_proportion, delay_us }
    }

    /// Events in all, `None` when unbounded.
    pub fn max_events(&self) -> Option<u64> {
        self.config.max_events
    }

    /// Event `n`'s number after the out-of-order shuffle within its group.
    fn adjusted_number(&self, n: u64) -> u64 {
        let number = n + 1;
        let group = self.config.out_of_order_group_size.max(1);
        (number / group) * group + (number.wrapping_mul(953)) % group
    }

    fn timestamp_of(&self, number: u64) -> i64 {
        self.config.base_time_ms + ((number as f64 * self.delay_us) as i64) / 1000
    }

    fn kind_of_id(&self, id: i64) -> EventKind {
        let rem = id % self.total_proportion;
        let person = i64::from(self.config.person_proportion);
        if rem < person {
            EventKind::Person
        } else if rem < person + i64::from(self.config.auction_proportion) {
            EventKind::Auction
        } else {
            EventKind::Bid
        }
    }

    fn event_id(&self, n: u64) -> i64 {
        1 + self.adjusted_number(n) as i64
    }

    /// The kind of event `n`, without generating it.
    pub fn kind(&self, n: u64) -> EventKind {
        self.kind_of_id(self.event_id(n))
    }

    /// The event time of event `n` (epoch ms).
    pub fn timestamp(&self, n: u64) -> i64 {
        self.timestamp_of(self.adjusted_number(n))
    }

    /// Event `n` (counted from 0).
    pub fn event(&self, n: u64) -> Event {
        let id = self.event_id(n);
        let time = self.timestamp(n);
        let mut rng = SplitRandom::new(id);
        match self.kind_of_id(id) {
            EventKind::Person => Event::Person(self.person(id, &mut rng, time)),
            EventKind::Auction => Event::Auction(self.auction(n, id, &mut rng, time)),
            EventKind::Bid => Event::Bid(self.bid(id, &mut rng, time)),
        }
    }

    fn last_base0_person_id(&self, id: i64) -> i64 {
        let epoch = id / self.total_proportion;
        let person = i64::from(self.config.person_proportion);
        let offset = (id % self.total_proportion).min(person - 1);
        epoch * person + offset
    }

    fn last_base0_auction_id(&self, id: i64) -> i64 {
        let (person, auction) = (i64::from(self.config.person_proportion), i64::from(self.config.auction_proportion));
        let mut epoch = id / self.total_proportion;
        let mut offset = id % self.total_proportion;
        if offset < person {
            epoch -= 1;
            offset = auction - 1;
        } else if offset >= person + auction {
            offset = auction - 1;
        } else {
            offset -= person;
        }
        epoch * auction + offset
    }

    fn next_base0_person_id(&self, id: i64, rng: &mut SplitRandom) -> i64 {
        let people = self.last_base0_person_id(id) + 1;
        let active = people.min(self.config.num_active_people);
        people - active + rng.below_long(active + PERSON_ID_LEAD)
    }

    fn next_base0_auction_id(&self, id: i64, rng: &mut SplitRandom) -> i64 {
        let max = self.last_base0_auction_id(id);
        let min = (max - self.config.num_in_flight_auctions).max(0);
        min + rng.below_long(max - min + 1 + AUCTION_ID_LEAD)
    }

    fn person(&self, id: i64, rng: &mut SplitRandom, time: i64) -> Person {
        let name = format!(
            "{} {}",
            FIRST_NAMES[rng.below(FIRST_NAMES.len() as i32) as usize],
            LAST_NAMES[rng.below(LAST_NAMES.len() as i32) as usize]
        );
        let email_address = format!("{}@{}.com", rng.string(7, ' '), rng.string(5, ' '));
        let credit_card = (0..4).map(|_| format!("{:04}", rng.below(10_000))).collect::<Vec<_>>().join(" ");
        let city = US_CITIES[rng.below(US_CITIES.len() as i32) as usize].to_string();
        let state = US_STATES[rng.below(US_STATES.len() as i32) as usize].to_string();
        let current = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
        let extra = rng.extra(current, self.config.avg_person_bytes);
        Person {
            id: self.last_base0_person_id(id) + FIRST_PERSON_ID,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: time,
            extra,
        }
    }

    fn auction(&self, n: u64, id: i64, rng: &mut SplitRandom, time: i64) -> Auction {
        let seller = if rng.below(self.config.hot_sellers_ratio.max(1) as i32) > 0 {
            (self.last_base0_person_id(id) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        } else {
            self.next_base0_person_id(id, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + i64::from(rng.below(NUM_CATEGORIES));
        let initial_bid = rng.price();
        let expires = time + self.auction_length_ms(n, rng, time);
        let item_name = rng.string(20, ' ');
        let description = rng.string(100, ' ');
        let reserve = initial_bid + rng.price();
        let current = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
        let extra = rng.extra(current, self.config.avg_auction_bytes);
        Auction {
            id: self.last_base0_auction_id(id) + FIRST_AUCTION_ID,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time: time,
            expires,
            seller,
            category,
            extra,
        }
    }

    /// How long an auction runs: up to twice the time until `num_in_flight_auctions` more
    /// auctions have started.
    fn auction_length_ms(&self, n: u64, rng: &mut SplitRandom, time: i64) -> i64 {
        let events_for_auctions = (self.config.num_in_flight_auctions * self.total_proportion)
            / i64::from(self.config.auction_proportion.max(1));
        let future = self.timestamp_of(self.adjusted_number(n) + events_for_auctions as u64);
        1 + rng.below_long(((future - time) * 2).max(1))
    }

    fn bid(&self, id: i64, rng: &mut SplitRandom, time: i64) -> Bid {
        let auction = if rng.below(self.config.hot_auction_ratio.max(1) as i32) > 0 {
            (self.last_base0_auction_id(id) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        } else {
            self.next_base0_auction_id(id, rng)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(self.config.hot_bidders_ratio.max(1) as i32) > 0 {
            (self.last_base0_person_id(id) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        } else {
            self.next_base0_person_id(id, rng)
        } + FIRST_PERSON_ID;
        let price = rng.price();
        let channels = channels();
        let (channel, url) = if rng.below(2) > 0 {
            let i = rng.below(HOT_CHANNELS.len() as i32) as usize;
            (HOT_CHANNELS[i].to_string(), channels.hot_urls[i].clone())
        } else {
            channels.table[rng.below(CHANNELS as i32) as usize].clone()
        };
        let extra = rng.extra(32, self.config.avg_bid_bytes);
        Bid { auction, bidder, price, channel, url, date_time: time, extra }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's published first output for seed 0, and Java's bounded-draw contract.
    #[test]
    fn the_random_generator_is_splitmix64() {
        let mut rng = SplitRandom::new(0);
        assert_eq!(rng.next_i64() as u64, 0xe220_a839_7b1d_cdaf);
        let mut rng = SplitRandom::new(7);
        for bound in [1, 2, 3, 7, 13, 26, 100, 10_000, i32::MAX] {
            for _ in 0..200 {
                let v = rng.below(bound);
                assert!((0..bound).contains(&v), "{v} of {bound}");
            }
        }
        let unit = rng.next_f64();
        assert!((0.0..1.0).contains(&unit));
    }

    /// Ids, kinds and timestamps against the reference generator's table (default
    /// configuration, base time 0), which does not depend on random draws.
    #[test]
    fn ids_kinds_and_times_follow_the_reference() {
        let g = Generator::new(GeneratorConfig::default());
        let kinds: Vec<EventKind> = (0..4).map(|n| g.kind(n)).collect();
        assert_eq!(kinds, [EventKind::Auction, EventKind::Auction, EventKind::Bid, EventKind::Bid]);
        assert_eq!(g.kind(48), EventKind::Person);
        // (n, timestamp, own id of a person or auction)
        for (n, time, own) in [(0, 0, 1001), (1, 0, 1002), (48, 4, 1001), (49, 5, 1003), (4998, 499, 1100)] {
            assert_eq!(g.timestamp(n), time, "event {n}");
            let id = match g.event(n) {
                Event::Person(p) => p.id,
                Event::Auction(a) => a.id,
                Event::Bid(_) => panic!("event {n} is a bid"),
            };
            assert_eq!(id, own, "event {n}");
        }
        // Hot sellers and auctions are multiples of 100 past the first ids.
        let Event::Bid(bid) = g.event(5110) else { panic!("a bid") };
        assert!(bid.auction >= FIRST_AUCTION_ID && bid.bidder >= FIRST_PERSON_ID, "{bid:?}");
    }

    /// Over many events: the mix, the hot shares, prices, categories and sizes behave as
    /// the configuration says.
    #[test]
    fn generated_values_have_the_configured_distribution() {
        let g = Generator::new(GeneratorConfig::default());
        let (mut bids, mut hot_auction, mut bytes) = (0u64, 0u64, 0usize);
        let mut people = 0;
        for n in 0..50_000 {
            match g.event(n) {
                Event::Bid(b) => {
                    bids += 1;
                    hot_auction += u64::from((b.auction - FIRST_AUCTION_ID) % HOT_AUCTION_RATIO == 0);
                    bytes += 32 + b.extra.len();
                    assert!((100..=100_000_000).contains(&b.price), "{b:?}");
                    assert!(b.url.starts_with("https://www.nexmark.com/"), "{b:?}");
                }
                Event::Auction(a) => {
                    assert!((10..15).contains(&a.category) && a.reserve >= a.initial_bid && a.expires > a.date_time);
                }
                Event::Person(p) => {
                    people += 1;
                    assert_eq!(p.credit_card.len(), 19, "{p:?}");
                }
            }
        }
        assert_eq!((bids, people), (46_000, 1_000));
        // Half of the bids go to hot auctions, and random ones to a multiple of 100 by chance.
        let share = hot_auction as f64 / bids as f64;
        assert!((0.49..0.53).contains(&share), "{share}");
        let average = bytes as f64 / bids as f64;
        assert!((average - 100.0).abs() < 2.0, "average bid size {average}");
    }
}
