use proptest::prelude::*;

use super::*;
use crate::domain::NodeId;

fn ctx() -> Ctx {
    Ctx {
        now_ms: 1_700_000_000_000,
        node: NodeId::parse("n1").unwrap(),
        cause: crate::domain::MessageId::from_bytes([0; 16]),
    }
}

fn sku() -> Sku {
    Sku::parse("book-1").unwrap()
}

fn order(n: u8) -> OrderId {
    OrderId::parse(&format!("o-{n}")).unwrap()
}

/// Runs commands from an empty item, checking the invariant after each, and returns the
/// final item and every event.
fn check(cmds: &[StockCommand]) -> (StockItem, Vec<StockItemEvent>, Vec<Result<(), DomainError>>) {
    let mut item = StockItem::new(sku());
    let mut events = Vec::new();
    let mut results = Vec::new();
    for cmd in cmds {
        match item.handle(cmd, &ctx()) {
            Ok((next, evs)) => {
                next.check_invariant().unwrap();
                item = next;
                events.extend(evs);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (item, events, results)
}

fn receive(n: u32) -> StockCommand {
    StockCommand::Receive { qty: Qty::new(n), dims: None }
}

fn book(o: u8, n: u32) -> StockCommand {
    StockCommand::Book { order: order(o), qty: Qty::new(n) }
}

fn release(o: u8, n: u32) -> StockCommand {
    StockCommand::Release { order: order(o), qty: Qty::new(n), reason: ReleaseReason::OrderCancelled }
}

fn ship(o: u8, n: u32) -> StockCommand {
    StockCommand::Ship { order: order(o), qty: Qty::new(n) }
}

#[test]
fn a_booking_holds_units_until_released_or_shipped() {
    let (item, events, results) = check(&[receive(10), book(1, 3), book(2, 4), release(1, 3), ship(2, 4)]);
    assert!(results.iter().all(Result::is_ok));
    let l = item.levels();
    assert_eq!((l.received.get(), l.free.get(), l.booked.get(), l.shipped.get()), (10, 6, 0, 4));
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].levels, l);
}

#[test]
fn never_books_more_than_is_free() {
    let (item, _, results) = check(&[receive(2), book(1, 2), book(2, 1)]);
    assert_eq!(results[2], Err(DomainError::InsufficientStock { sku: sku(), requested: Qty::new(1), free: Qty::ZERO }));
    assert_eq!(item.levels().free, Qty::ZERO);
}

#[test]
fn releasing_or_shipping_more_than_is_booked_is_refused() {
    let (item, events, results) =
        check(&[receive(5), book(1, 2), release(1, 3), ship(1, 3), release(1, 2), release(1, 1)]);
    assert!(matches!(results[2], Err(DomainError::NotBooked { .. })));
    assert!(matches!(results[3], Err(DomainError::NotBooked { .. })));
    assert!(results[4].is_ok());
    assert!(matches!(results[5], Err(DomainError::NotBooked { .. })));
    assert_eq!(events.len(), 3);
    assert_eq!(item.levels().free.get(), 5);
}

#[test]
fn zero_quantities_and_impossible_returns_are_rejected() {
    let (item, _, results) = check(&[
        receive(0),
        receive(3),
        book(1, 0),
        StockCommand::AcceptReturn { order: order(1), qty: Qty::new(1) },
        StockCommand::ReturnToSupplier { qty: Qty::new(4) },
        ship(9, 1),
    ]);
    assert_eq!(results[0], Err(DomainError::ZeroQuantity));
    assert_eq!(results[2], Err(DomainError::ZeroQuantity));
    assert!(matches!(results[3], Err(DomainError::ReturnExceedsShipped { .. })));
    assert!(matches!(results[4], Err(DomainError::ReturnExceedsFree { .. })));
    assert!(matches!(results[5], Err(DomainError::NotBooked { .. })));
    assert_eq!(item.levels().received.get(), 3);
}

#[test]
fn receiving_past_the_counter_range_is_refused_not_wrapped() {
    let (item, _, results) = check(&[receive(u32::MAX), receive(1)]);
    assert_eq!(results[1], Err(DomainError::QuantityOverflow));
    assert_eq!(item.levels().received.get(), u32::MAX);
}

#[test]
fn returns_move_units_between_the_right_counts() {
    let (item, _, results) = check(&[
        receive(10),
        book(1, 4),
        ship(1, 4),
        StockCommand::AcceptReturn { order: order(1), qty: Qty::new(1) },
        StockCommand::ReturnToSupplier { qty: Qty::new(2) },
    ]);
    assert!(results.iter().all(Result::is_ok));
    let l = item.levels();
    assert_eq!((l.free.get(), l.booked.get(), l.shipped.get(), l.returned.get()), (5, 0, 3, 2));
}

#[test]
fn a_schema_1_item_with_per_order_bookings_reads_as_counts() {
    let mut bookings = BTreeMap::new();
    bookings.insert(order(1), Qty::new(2));
    let levels =
        StockLevels { received: Qty::new(5), free: Qty::new(3), booked: Qty::new(2), ..StockLevels::default() };
    let v1 = StockItemV1 { sku: sku(), levels, bookings, dims: None };
    let item = StockItem::from(v1);
    assert_eq!(item.levels(), levels);
    assert!(item.check_invariant().is_ok());
}

fn arb_command() -> impl Strategy<Value = StockCommand> {
    let o = 0u8..5;
    let q = 0u32..6;
    prop_oneof![
        (q.clone(), any::<bool>()).prop_map(|(n, d)| StockCommand::Receive {
            qty: Qty::new(n),
            dims: d.then_some(Dimensions { weight_g: 300, length_mm: 200, width_mm: 130, height_mm: 20 }),
        }),
        (o.clone(), q.clone()).prop_map(|(o, n)| book(o, n)),
        (o.clone(), q.clone(), 0u8..3).prop_map(|(o, n, r)| StockCommand::Release {
            order: order(o),
            qty: Qty::new(n),
            reason: [ReleaseReason::OrderCancelled, ReleaseReason::BookingFailed, ReleaseReason::Unrecorded]
                [usize::from(r)],
        }),
        (o.clone(), q.clone()).prop_map(|(o, n)| ship(o, n)),
        (o, q.clone()).prop_map(|(o, n)| StockCommand::AcceptReturn { order: order(o), qty: Qty::new(n) }),
        q.prop_map(|n| StockCommand::ReturnToSupplier { qty: Qty::new(n) }),
        Just(StockCommand::Get),
    ]
}

/// Random command sequences in which some commands are delivered twice (a redelivery).
fn arb_commands_with_duplicates() -> impl Strategy<Value = Vec<StockCommand>> {
    prop::collection::vec((arb_command(), any::<bool>()), 0..80)
        .prop_map(|v| v.into_iter().flat_map(|(c, twice)| if twice { vec![c.clone(), c] } else { vec![c] }).collect())
}

/// Whether a command must be refused at `l`, decided from the counts alone (independently of
/// `StockItem::handle`).
fn refused_by_model(l: &StockLevels, cmd: &StockCommand) -> bool {
    let (q, limit) = match cmd {
        StockCommand::Receive { qty, .. } => (qty.get(), u32::MAX - l.received.get().max(l.free.get())),
        StockCommand::Book { qty, .. } | StockCommand::ReturnToSupplier { qty } => (qty.get(), l.free.get()),
        StockCommand::Release { qty, .. } | StockCommand::Ship { qty, .. } => (qty.get(), l.booked.get()),
        StockCommand::AcceptReturn { qty, .. } => (qty.get(), l.shipped.get()),
        StockCommand::Get => return false,
    };
    q == 0 || q > limit
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariant_holds_after_every_step(cmds in arb_commands_with_duplicates()) {
        let mut item = StockItem::new(sku());
        let mut events = Vec::new();
        for cmd in &cmds {
            let before = item.clone();
            let refused = refused_by_model(&item.levels(), cmd);
            match item.handle(cmd, &ctx()) {
                Ok((next, evs)) => {
                    prop_assert!(!refused, "{cmd:?} was taken at {:?}", before.levels());
                    prop_assert!(next.check_invariant().is_ok(), "{:?}", next.check_invariant());
                    if evs.is_empty() {
                        prop_assert_eq!(&next, &before, "no event, no change");
                    }
                    for e in &evs {
                        prop_assert_eq!(&e.levels, &next.levels);
                    }
                    events.extend(evs);
                    item = next;
                }
                Err(e) => prop_assert!(refused, "{cmd:?} was refused at {:?}: {e}", before.levels()),
            }
        }
        // Replaying the events through `apply` rebuilds the same item.
        let mut replayed = StockItem::new(sku());
        for e in &events {
            prop_assert!(replayed.apply(&e.change).is_ok());
        }
        prop_assert_eq!(replayed, item);
    }
}
