use super::*;
use crate::state::MemoryStateStore;

fn tables(clock: StateClock) -> (Arc<MemoryStateStore>, StateTables) {
    let store = Arc::new(MemoryStateStore::default());
    let tables = StateTables::new(store.clone(), (0, 128), clock);
    (store, tables)
}

#[test]
fn tables_of_every_kind_share_a_store_without_clashing() {
    let (store, mut t) = tables(StateClock::System);
    let value = t.value::<String>("value", None).unwrap();
    let list = t.list::<i64>("list", None).unwrap();
    let map = t.map::<String>("map", None).unwrap();
    let time = t.time_ordered::<String>("time", None).unwrap();
    value.put(7, b"k", &"v".to_string()).unwrap();
    list.add(7, b"k", &1).unwrap();
    list.add(7, b"k", &-2).unwrap();
    map.put(7, b"k", b"y", &"2".into()).unwrap();
    map.put(7, b"k", b"x", &"1".into()).unwrap();
    map.put(7, b"kk", b"x", &"3".into()).unwrap();
    time.insert(7, b"k", 20, &"late".into()).unwrap();
    time.insert(7, b"k", -5, &"early".into()).unwrap();
    time.insert(7, b"k", 20, &"late again".into()).unwrap();
    time.insert(7, b"kk", 0, &"other key".into()).unwrap();

    assert_eq!(value.get(7, b"k").unwrap(), Some("v".into()));
    assert_eq!(value.get(8, b"k").unwrap(), None, "key groups separate keys");
    assert_eq!(list.get(7, b"k").unwrap(), vec![1, -2]);
    assert_eq!(map.entries(7, b"k").unwrap(), vec![(b"x".to_vec(), "1".into()), (b"y".to_vec(), "2".into())]);
    assert_eq!(
        time.range(7, b"k", i64::MIN, i64::MAX).unwrap(),
        vec![(-5, "early".into()), (20, "late".into()), (20, "late again".into())],
        "time order, then insertion order"
    );
    assert_eq!(time.range(7, b"k", 0, 19).unwrap(), vec![]);
    assert_eq!(value.entries().unwrap(), vec![(7, b"k".to_vec(), "v".into())], "a table sees only its own entries");

    assert_eq!(time.remove_through(7, b"k", 0).unwrap(), 1);
    assert_eq!(time.range(7, b"k", i64::MIN, i64::MAX).unwrap().len(), 2);
    assert_eq!(time.range(7, b"kk", i64::MIN, i64::MAX).unwrap().len(), 1, "another key's entries stay");
    map.clear(7, b"k").unwrap();
    assert!(map.entries(7, b"k").unwrap().is_empty());
    assert_eq!(map.get(7, b"kk", b"x").unwrap(), Some("3".into()));
    list.replace(7, b"k", &[]).unwrap();
    assert!(list.get(7, b"k").unwrap().is_empty());
    let mut groups = Vec::new();
    store
        .scan(&[], &mut |k, _| {
            groups.push(crate::state::key_group_of(k).unwrap());
            true
        })
        .unwrap();
    assert!(!groups.is_empty() && groups.iter().all(|&g| g == 7));
}

#[test]
fn a_table_is_found_by_its_name_whatever_the_order_of_declaration() {
    let (store, mut first) = tables(StateClock::System);
    first.value::<i64>("a", None).unwrap().put(1, b"k", &1).unwrap();
    first.value::<i64>("b", None).unwrap().put(1, b"k", &2).unwrap();
    let mut second = StateTables::new(store, (0, 128), StateClock::System);
    let b = second.value::<i64>("b", None).unwrap();
    let a = second.value::<i64>("a", None).unwrap();
    assert_eq!((a.get(1, b"k").unwrap(), b.get(1, b"k").unwrap()), (Some(1), Some(2)));
    let twice = second.value::<i64>("a", None).err().expect("a second declaration is refused");
    assert!(twice.to_string().contains("'a' is declared twice"), "{twice}");
}

/// An encoding whose version differs from `String`'s.
struct Renamed(String);

impl StateValue for Renamed {
    const VERSION: u8 = 2;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(Renamed(String::from_utf8_lossy(bytes).into_owned()))
    }
}

#[test]
fn an_entry_of_another_encoding_version_is_refused_with_the_table_name() {
    let (store, mut old) = tables(StateClock::System);
    old.value::<String>("names", None).unwrap().put(3, b"k", &"x".into()).unwrap();
    let mut new = StateTables::new(store, (0, 128), StateClock::System);
    let e = new.value::<Renamed>("names", None).unwrap().get(3, b"k").err().expect("refused");
    let text = e.to_string();
    assert!(text.contains("'names'") && text.contains("version 1") && text.contains("version 2"), "{text}");
}

#[test]
fn an_entry_older_than_its_ttl_is_never_returned_and_a_write_restarts_the_ttl() {
    let clock = StateClock::manual(1_000_000);
    let (_store, mut t) = tables(clock.clone());
    let ttl = Some(Duration::from_secs(10));
    let value = t.value::<i64>("value", ttl).unwrap();
    let list = t.list::<i64>("list", ttl).unwrap();
    let map = t.map::<i64>("map", ttl).unwrap();
    let time = t.time_ordered::<i64>("time", ttl).unwrap();
    let forever = t.value::<i64>("forever", None).unwrap();
    value.put(1, b"old", &1).unwrap();
    list.add(1, b"old", &1).unwrap();
    map.put(1, b"old", b"u", &1).unwrap();
    time.insert(1, b"old", 5, &1).unwrap();
    forever.put(1, b"old", &1).unwrap();
    clock.advance(6_000);
    value.put(1, b"young", &2).unwrap();
    value.put(1, b"rewritten", &3).unwrap();
    clock.advance(3_999);
    assert_eq!(value.get(1, b"old").unwrap(), Some(1), "9.999 s old: still live");
    value.put(1, b"rewritten", &4).unwrap();
    clock.advance(1);
    assert_eq!(value.get(1, b"old").unwrap(), None, "10 s old: expired");
    assert!(list.get(1, b"old").unwrap().is_empty());
    assert!(map.entries(1, b"old").unwrap().is_empty() && map.get(1, b"old", b"u").unwrap().is_none());
    assert!(time.range(1, b"old", i64::MIN, i64::MAX).unwrap().is_empty());
    assert_eq!(forever.get(1, b"old").unwrap(), Some(1), "a table without a TTL keeps its entries");
    assert_eq!(value.get(1, b"young").unwrap(), Some(2));
    clock.advance(6_000);
    assert_eq!(value.get(1, b"young").unwrap(), None);
    assert_eq!(value.get(1, b"rewritten").unwrap(), Some(4), "the second write restarted its TTL");
    assert_eq!(value.entries().unwrap(), vec![(1, b"rewritten".to_vec(), 4)], "scans skip expired entries");
}

/// A long run writing a new key every millisecond with a 1 s TTL: without cleanup the
/// store would hold all 200 000 keys; the background cleanup keeps it near what one TTL
/// holds.
#[test]
fn a_long_run_with_a_ttl_keeps_state_bounded() {
    let clock = StateClock::manual(0);
    let (store, mut t) = tables(clock.clone());
    let value = t.value::<i64>("counts", Some(Duration::from_secs(1))).unwrap();
    let mut largest = 0;
    for i in 0..200_000i64 {
        let key = i.to_be_bytes();
        value.put((i % 128) as u32, &key, &i).unwrap();
        clock.advance(1);
        largest = largest.max(store.len());
    }
    assert!(largest <= 5_000, "the store grew to {largest} entries");
    assert!(t.expired_removed() >= 190_000, "{} removed", t.expired_removed());
    assert!(value.entries().unwrap().len() <= 1_000, "only the last second's keys are live");
}

#[test]
fn the_expiry_is_read_from_the_stored_value_alone() {
    let clock = StateClock::manual(500);
    let (store, mut t) = tables(clock.clone());
    t.value::<()>("with ttl", Some(Duration::from_millis(100))).unwrap().put(0, b"a", &()).unwrap();
    t.value::<()>("without", None).unwrap().put(0, b"b", &()).unwrap();
    let mut stored = Vec::new();
    store
        .scan(&[], &mut |_, v| {
            stored.push(v.to_vec());
            true
        })
        .unwrap();
    let expired: Vec<bool> = stored.iter().map(|v| is_expired(v, 600)).collect();
    assert_eq!(expired.iter().filter(|e| **e).count(), 1, "only the TTL entry expires at 600");
    assert!(stored.iter().all(|v| !is_expired(v, 599)));
    clock.advance(100);
    assert_eq!(t.cleanup_slice().unwrap(), 1);
    assert_eq!(store.len(), 1);
}
