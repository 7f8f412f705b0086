//! Tests of the id sets: list parsing and printing, set algebra, property tests.
use super::*;
use proptest::prelude::*;

fn cs(s: &str) -> CpuSet {
    s.parse().unwrap()
}

#[test]
fn parses_and_prints_canonical_lists() {
    assert_eq!(cs("0-3,8,10-11").to_string(), "0-3,8,10-11");
    assert_eq!(cs("").to_string(), "");
    assert!(cs("  \n").is_empty());
    assert_eq!(cs("3,2,1,0\n").to_string(), "0-3");
    assert_eq!(cs("10-11,0-1,1-2").to_string(), "0-2,10-11");
    assert_eq!(cs("63-64").to_string(), "63-64");
    assert_eq!(cs("0-127").len(), 128);
    assert_eq!(cs("65535").last(), Some(CpuId(65535)));
    let n: NodeSet = "0,2".parse().unwrap();
    assert_eq!(n.iter().collect::<Vec<_>>(), vec![NodeId(0), NodeId(2)]);
}

#[test]
fn rejects_bad_lists_with_position() {
    let cases: &[(&str, SetParseErrorKind, usize)] = &[
        ("0,,1", SetParseErrorKind::EmptyElement, 2),
        ("0,", SetParseErrorKind::EmptyElement, 2),
        (",0", SetParseErrorKind::EmptyElement, 0),
        (
            "3-1",
            SetParseErrorKind::ReversedRange { start: 3, end: 1 },
            2,
        ),
        ("a", SetParseErrorKind::UnexpectedChar('a'), 0),
        ("0-", SetParseErrorKind::ExpectedNumber, 2),
        ("-1", SetParseErrorKind::ExpectedNumber, 0),
        ("1 2", SetParseErrorKind::UnexpectedChar(' '), 1),
        ("65536", SetParseErrorKind::IdTooLarge, 0),
        ("0-4294967296", SetParseErrorKind::IdTooLarge, 2),
        ("99999999999999999999999", SetParseErrorKind::IdTooLarge, 0),
        ("1-2-3", SetParseErrorKind::UnexpectedChar('-'), 3),
        ("1é", SetParseErrorKind::UnexpectedChar('é'), 1),
        ("é", SetParseErrorKind::ExpectedNumber, 0),
    ];
    for (input, kind, pos) in cases {
        let e = input.parse::<CpuSet>().unwrap_err();
        assert_eq!(&e.kind, kind, "{input}");
        assert_eq!(e.pos, *pos, "{input}");
        assert!(e.to_string().contains("CPU list"), "{e}");
    }
    let e = "x".parse::<NodeSet>().unwrap_err();
    assert!(e.to_string().contains("NUMA node list"), "{e}");
}

#[test]
fn set_operations() {
    let a = cs("0-7");
    let b = cs("4-11");
    assert_eq!(a.union(&b).to_string(), "0-11");
    assert_eq!(a.intersection(&b).to_string(), "4-7");
    assert_eq!(a.difference(&b).to_string(), "0-3");
    assert_eq!(a.intersection_len(&b), 4);
    assert!(cs("1-2").is_subset(&a));
    assert!(!b.is_subset(&a));
    assert!(cs("0-3").is_disjoint(&cs("4-200")));
    // Canonical form: removing the high bits makes it equal to a small set.
    let mut big = cs("1,200");
    big.remove(CpuId(200));
    assert_eq!(big, cs("1"));
    assert_eq!(cs("100").difference(&cs("100")), CpuSet::new());
    assert_eq!(
        cs("0-3,8").ranges().collect::<Vec<_>>(),
        vec![(0, 3), (8, 8)]
    );
    assert_eq!(CpuSet::from_range(2, 5), cs("2-5"));
    assert_eq!(CpuSet::new().try_insert(CpuId(70_000)), None);
}

#[test]
fn serde_uses_list_strings() {
    let s = cs("0-3,8");
    let j = serde_json::to_string(&s).unwrap();
    assert_eq!(j, "\"0-3,8\"");
    assert_eq!(serde_json::from_str::<CpuSet>(&j).unwrap(), s);
    assert!(serde_json::from_str::<CpuSet>("\"0-\"").is_err());
}

proptest! {
    #[test]
    fn display_parse_roundtrip(ids in proptest::collection::btree_set(0u32..2000, 0..200)) {
        let set: CpuSet = ids.iter().copied().map(CpuId).collect();
        let back: CpuSet = set.to_string().parse().unwrap();
        prop_assert_eq!(&back, &set);
        prop_assert_eq!(set.len(), ids.len());
        prop_assert_eq!(set.iter().map(|c| c.0).collect::<Vec<_>>(), ids.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn ops_match_btreeset(
        a in proptest::collection::btree_set(prop_oneof![0u32..300, 4000u32..4200, 65_400u32..=65_535], 0..80),
        b in proptest::collection::btree_set(prop_oneof![0u32..300, 4000u32..4200, 65_400u32..=65_535], 0..80),
    ) {
        let sa: CpuSet = a.iter().copied().map(CpuId).collect();
        let sb: CpuSet = b.iter().copied().map(CpuId).collect();
        let to = |s: &CpuSet| s.iter().map(|c| c.0).collect::<std::collections::BTreeSet<_>>();
        prop_assert_eq!(to(&sa.union(&sb)), a.union(&b).copied().collect());
        prop_assert_eq!(to(&sa.intersection(&sb)), a.intersection(&b).copied().collect());
        prop_assert_eq!(to(&sa.difference(&sb)), a.difference(&b).copied().collect());
        prop_assert_eq!(sa.is_subset(&sb), a.is_subset(&b));
        prop_assert_eq!(sa.is_disjoint(&sb), a.is_disjoint(&b));
        // Canonical representation: equal contents => equal values.
        let rebuilt: CpuSet = sa.union(&sb).difference(&sb).union(&sa.intersection(&sb));
        prop_assert_eq!(&rebuilt, &sa);
        prop_assert_eq!(sa.intersection_len(&sb), a.intersection(&b).count());
        prop_assert_eq!(sa.first().map(|c| c.0), a.first().copied());
        prop_assert_eq!(sa.last().map(|c| c.0), a.last().copied());
        let mut u = sa.clone();
        u.union_with(&sb);
        prop_assert_eq!(&u, &sa.union(&sb));
        let mut d = sa.clone();
        d.difference_with(&sb);
        prop_assert_eq!(&d, &sa.difference(&sb));
        for x in &b {
            let mut c = sa.clone();
            c.insert(CpuId(*x));
            c.remove(CpuId(*x));
            prop_assert_eq!(c.contains(CpuId(*x)), false);
            prop_assert_eq!(c, sa.difference(&std::iter::once(CpuId(*x)).collect()));
        }
    }

    #[test]
    fn parse_never_panics(s in ".{0,40}") {
        let _ = s.parse::<CpuSet>();
        let _ = s.parse::<NodeSet>();
    }
}
