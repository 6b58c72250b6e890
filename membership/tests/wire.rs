//! `gms` wire format: exact round trips of every gossip kind (an `Install` carrying several
//! last primary views included) and control message, and arbitrary bytes into every decoder
//! never panic (bolero).

use thoth_membership::gms::wire::{Ctl, Gossip, Install, Kind, MAX_PRIMARIES, Primary, Side};
use thoth_stack::{Bytes, EndpointId, Rank, View, ViewId};

fn vid(l: u64, c: u64) -> ViewId {
    ViewId { ltime: l, coord: EndpointId(c) }
}

fn install() -> Install {
    let members = vec![EndpointId(100), EndpointId(200), EndpointId(300)];
    Install {
        view: View {
            id: vid(9, 100),
            members: members.clone(),
            primary: false,
            subgroups: vec![vec![EndpointId(100)], vec![EndpointId(200), EndpointId(300)]],
        },
        sides: vec![Side { view: vid(8, 100), coord: EndpointId(100), attempt: 3 }],
        joiners: vec![EndpointId(300)],
        last_primary: vec![
            Primary { id: vid(7, 100), members: vec![EndpointId(100), EndpointId(400)] },
            Primary { id: vid(5, 200), members: vec![EndpointId(200)] },
        ],
        keys: Bytes::from_static(b"a key table, opaque to the membership"),
    }
}

#[test]
fn every_message_round_trips() {
    let i = install();
    assert_eq!(Install::from_bytes(&i.to_bytes()), Ok(i.clone()));
    let kinds = [
        Kind::Hello,
        Kind::Join,
        Kind::Beacon { members: i.view.members.clone() },
        Kind::MergeReady { members: i.view.members.clone(), attempt: 4, last_primary: i.last_primary.clone() },
        Kind::Install(Box::new(i)),
    ];
    for kind in kinds {
        let g = Gossip { view: vid(3, 200), kind };
        assert_eq!(Gossip::decode(&g.encode()), Ok(g));
    }
    let ctls = [
        Ctl::Suspect(vec![Rank(1), Rank(4)]),
        Ctl::Leave,
        Ctl::Block { attempt: 2, failed: vec![Rank(0)] },
        Ctl::Report { attempt: 2, delivered: vec![7, 0, 300] },
        Ctl::Cut { attempt: 2, cut: vec![7, 1, 300] },
        Ctl::Flushed { attempt: 2 },
        Ctl::Ready,
        Ctl::StateOk,
        Ctl::Go,
        Ctl::Ping(9),
        Ctl::Pong(9),
    ];
    for c in ctls {
        assert_eq!(Ctl::decode(&c.encode()), Ok(c));
    }
}

#[test]
fn too_many_primaries_are_refused() {
    let mut i = install();
    i.last_primary = (0..=MAX_PRIMARIES as u64).map(|k| Primary { id: vid(k + 1, 100), members: vec![] }).collect();
    assert!(Install::from_bytes(&i.to_bytes()).is_err());
    i.last_primary.pop();
    assert_eq!(Install::from_bytes(&i.to_bytes()), Ok(i));
}

#[test]
fn arbitrary_bytes_never_panic() {
    bolero::check!().for_each(|b: &[u8]| {
        let _ = Gossip::decode(b);
        let _ = Ctl::decode(b);
        let _ = Install::from_bytes(b);
    });
}
