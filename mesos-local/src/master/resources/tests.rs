//! Unit tests of the master's resource arithmetic (`resources.rs`).

use super::*;
use proptest::prelude::*;

pub(crate) fn scalar(name: &str, v: f64) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Scalar as i32,
        scalar: Some(value::Scalar { value: v }),
        ..Default::default()
    }
}

pub(crate) fn ranges(name: &str, rs: &[(u64, u64)]) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Ranges as i32,
        ranges: Some(value::Ranges {
            range: rs
                .iter()
                .map(|&(begin, end)| value::Range { begin, end })
                .collect(),
        }),
        ..Default::default()
    }
}

fn set(name: &str, items: &[&str]) -> Resource {
    Resource {
        name: name.into(),
        r#type: value::Type::Set as i32,
        set: Some(value::Set {
            item: items.iter().map(|s| s.to_string()).collect(),
        }),
        ..Default::default()
    }
}

fn res(protos: &[Resource]) -> Resources {
    Resources::from_protos(protos).unwrap()
}

#[test]
fn scalars_add_subtract_contain() {
    let total = res(&[scalar("cpus", 4.0), scalar("mem", 1024.0)]);
    let task = res(&[scalar("cpus", 1.5), scalar("mem", 100.0)]);
    assert!(total.contains(&task));
    let left = total.minus(&task);
    assert_eq!(left.scalar("cpus"), Some(2.5));
    assert_eq!(left.scalar("mem"), Some(924.0));
    assert!(!task.contains(&total));
    assert_eq!(left.plus(&task), total);
}

#[test]
fn ranges_sub_ranges_are_contained() {
    let offer = res(&[ranges("cpuids", &[(0, 7)]), scalar("cpus", 8.0)]);
    let want = res(&[ranges("cpuids", &[(2, 3), (6, 6)])]);
    assert!(offer.contains(&want));
    let left = offer.minus(&want);
    assert_eq!(
        left.summary_json()["cpuids"],
        serde_json::json!("[0-1, 4-5, 7-7]")
    );
    let outside = res(&[ranges("cpuids", &[(7, 8)])]);
    assert!(!offer.contains(&outside));
}

#[test]
fn role_star_equals_no_role_and_allocation_info_is_ignored() {
    let mut a = scalar("cpus", 1.0);
    a.role = Some("*".into());
    let mut b = scalar("cpus", 1.0);
    b.allocation_info = Some(retz_proto::mesos::resource::AllocationInfo {
        role: Some("x".into()),
    });
    assert_eq!(res(&[a]), res(&[b]));
    let mut reserved = scalar("cpus", 1.0);
    reserved.role = Some("ops".into());
    assert!(!res(&[scalar("cpus", 5.0)]).contains(&res(&[reserved])));
}

#[test]
fn validation_rejects_bad_values() {
    for bad in [
        scalar("cpus", 0.0),
        scalar("cpus", -1.0),
        scalar("cpus", f64::NAN),
        scalar("cpus", f64::INFINITY),
        scalar("cpus", 0.0001),
        ranges("ports", &[(5, 4)]),
        ranges("ports", &[(1, 5), (5, 9)]),
        ranges("ports", &[]),
        set("bugs", &["a", "a"]),
        scalar("", 1.0),
    ] {
        assert!(
            Resources::from_protos(std::slice::from_ref(&bad)).is_err(),
            "{bad:?}"
        );
    }
    let mut wrong = scalar("cpus", 1.0);
    wrong.r#type = value::Type::Ranges as i32;
    let e = Resources::from_protos(&[wrong]).unwrap_err();
    assert_eq!(e.name, "cpus");
    assert!(e.to_string().contains("without 'ranges'"), "{e}");
}

#[test]
fn sets_and_summary_and_display() {
    let r = res(&[
        set("bugs", &["b", "a"]),
        scalar("cpus", 0.5),
        ranges("ports", &[(31000, 31099), (31200, 31299)]),
    ]);
    assert_eq!(
        r.summary_json(),
        serde_json::json!({"bugs":"{a, b}","cpus":0.5,"disk":0,"gpus":0,"mem":0,
            "ports":"[31000-31099, 31200-31299]"})
    );
    assert!(r.contains(&res(&[set("bugs", &["a"])])));
    assert!(!r.contains(&res(&[set("bugs", &["c"])])));
    let text = r.to_string();
    assert!(text.contains("cpus(*):0.5"), "{text}");
    let old = r.to_protos(true, Some("eng"));
    assert!(old.iter().all(|p| p.role.as_deref() == Some("*")));
    assert!(old.iter().all(|p| p.allocation_info.is_some()));
    assert_eq!(Resources::from_protos(&old).unwrap(), r);
}

#[test]
fn reserved_resources_are_grouped_by_role() {
    let mut reserved = scalar("cpus", 2.0);
    reserved.role = Some("ops".into());
    let r = res(&[reserved, scalar("cpus", 1.0)]);
    assert_eq!(r.unreserved().scalar("cpus"), Some(1.0));
    let by_role = r.reserved_by_role();
    assert_eq!(by_role["ops"].scalar("cpus"), Some(2.0));
    assert_eq!(r.scalar("cpus"), Some(3.0));
}

fn arb_rangeset() -> impl Strategy<Value = RangeSet> {
    proptest::collection::btree_set(0u64..64, 0..40).prop_map(|vals| {
        let mut rs = RangeSet::default();
        for v in vals {
            rs.push_sorted(v, v);
        }
        rs
    })
}

fn values(r: &RangeSet) -> BTreeSet<u64> {
    r.runs().iter().flat_map(|&(b, e)| b..=e).collect()
}

proptest! {
    #[test]
    fn rangeset_ops_match_sets(a in arb_rangeset(), b in arb_rangeset()) {
        let (va, vb) = (values(&a), values(&b));
        prop_assert_eq!(values(&a.union(&b)), &va | &vb);
        prop_assert_eq!(values(&a.difference(&b)), &va - &vb);
        prop_assert_eq!(a.contains(&b), vb.is_subset(&va));
        // Canonical form: coalesced runs.
        for w in a.union(&b).runs().windows(2) {
            prop_assert!(w[0].1 + 1 < w[1].0);
        }
        prop_assert_eq!(a.count(), va.len() as u64);
    }

    #[test]
    fn subtract_then_add_restores(total in 1u32..10_000, part in 0u32..10_000,
                                  a in arb_rangeset(), b in arb_rangeset()) {
        let part = part.min(total);
        let mut protos = vec![scalar("cpus", f64::from(total) / 10.0)];
        if !a.is_empty() {
            protos.push(Resource { ranges: Some(a.to_proto()), ..ranges("cpuids", &[]) });
        }
        let whole = res(&protos);
        let mut sub = Vec::new();
        if part > 0 {
            sub.push(scalar("cpus", f64::from(part) / 10.0));
        }
        let inter = a.difference(&a.difference(&b));
        if !inter.is_empty() {
            sub.push(Resource { ranges: Some(inter.to_proto()), ..ranges("cpuids", &[]) });
        }
        let piece = res(&sub);
        prop_assert!(whole.contains(&piece));
        let rest = whole.minus(&piece);
        prop_assert!(rest.plus(&piece) == whole);
        prop_assert!(whole.contains(&rest));
    }
}
