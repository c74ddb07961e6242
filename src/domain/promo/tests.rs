use proptest::prelude::*;

use super::*;
use crate::domain::gate::CustomerOrders;
use crate::domain::pricing::Discount;
use crate::domain::NodeId;

fn ctx(now: u64, cause: u8) -> Ctx {
    Ctx { now_ms: now, node: NodeId::parse("n1").unwrap(), cause: MessageId::from_bytes([cause; 16]) }
}

fn rule(limit: Option<u32>) -> Rule {
    Rule {
        discount: Discount::Percent(10),
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: Some(1_000_000),
        usage_limit: limit,
    }
}

fn code(limit: Option<u32>) -> PromoAccount {
    PromoAccount::absent("SPRING", rule(limit)).create("ten off", rule(limit), &ctx(1, 0)).unwrap()
}

fn customer(i: u8) -> CustomerId {
    CustomerId::parse(&format!("c{i}@example.com")).unwrap()
}

fn order(i: u8) -> OrderId {
    OrderId::for_customer(3, &customer(i), 1)
}

fn not_applicable(r: Result<Option<PromoAccount>, DomainError>) -> bool {
    matches!(r, Err(DomainError::PromoNotApplicable { .. }))
}

#[test]
fn holds_are_counted_against_the_limit_and_taken_holds_become_uses() {
    let a = code(Some(2));
    let a = a.hold(&order(1), 1, &customer(1), &ctx(10, 1)).unwrap().unwrap();
    let a = a.hold(&order(2), 1, &customer(2), &ctx(10, 2)).unwrap().unwrap();
    assert!(not_applicable(a.hold(&order(3), 1, &customer(3), &ctx(10, 3))), "two holds use the limit up");
    let a = a.on_use(&PromoUse::Taken { order: order(1), cause: Some(MessageId::from_bytes([1; 16])) }).unwrap();
    assert_eq!((a.code.used_count, a.holds.len()), (1, 1));
    assert!(not_applicable(a.hold(&order(3), 1, &customer(3), &ctx(10, 3))), "one use and one hold");
    let a = a.release(&order(2), MessageId::from_bytes([2; 16])).unwrap();
    assert_eq!(a.taken(), 1);
    let a = a.hold(&order(3), 1, &customer(3), &ctx(10, 3)).unwrap().unwrap();
    assert_eq!(a.taken(), 2);
    // A cancelled order gives its use back.
    let a = a.on_use(&PromoUse::Released { order: order(1) }).unwrap();
    assert_eq!((a.code.used_count, a.holds.len()), (0, 1));
}

#[test]
fn a_hold_is_given_back_only_by_the_request_that_took_it() {
    let a = code(Some(1)).hold(&order(1), 1, &customer(1), &ctx(10, 1)).unwrap().unwrap();
    assert_eq!(a.hold(&order(1), 1, &customer(1), &ctx(11, 1)), Ok(None), "a repeat of the same request");
    assert!(matches!(a.hold(&order(1), 1, &customer(1), &ctx(11, 9)), Err(DomainError::Raced { .. })));
    assert_eq!(a.release(&order(1), MessageId::from_bytes([9; 16])), None, "another request cannot");
    assert_eq!(a.release(&order(2), MessageId::from_bytes([1; 16])), None, "no hold for that order");
    assert!(a.release(&order(1), MessageId::from_bytes([1; 16])).unwrap().holds.is_empty());
}

#[test]
fn unknown_expired_or_not_yet_valid_codes_give_no_hold() {
    let absent = PromoAccount::absent("NOPE", rule(None));
    assert!(not_applicable(absent.hold(&order(1), 1, &customer(1), &ctx(10, 1))));
    assert!(not_applicable(code(None).hold(&order(1), 1, &customer(1), &ctx(1_000_000, 1))), "expired");
    let mut later = rule(None);
    later.valid_from_ms = Some(500);
    let a = PromoAccount::absent("LATER", later.clone()).create("", later, &ctx(1, 0)).unwrap();
    assert!(not_applicable(a.hold(&order(1), 1, &customer(1), &ctx(499, 1))));
    assert!(a.hold(&order(1), 1, &customer(1), &ctx(500, 1)).unwrap().is_some());
}

#[test]
fn an_open_hold_asks_its_gate_once_and_the_answer_gives_it_back() {
    let a = code(Some(1)).hold(&order(1), 7, &customer(1), &ctx(10, 1)).unwrap().unwrap();
    assert_eq!(a.due_checks(10 + PROMO_HOLD_MS - 1), None, "not yet");
    let (a, asks) = a.due_checks(10 + PROMO_HOLD_MS).unwrap();
    assert_eq!(asks, vec![HoldCheck { token: "SPRING".into(), order: order(1), number: 7, customer: customer(1) }]);
    assert_eq!(a.due_checks(u64::MAX), None, "asked once");
    assert!(not_applicable(a.hold(&order(2), 1, &customer(2), &ctx(20_000, 2))), "still counted while asked");
    let a = a.on_use(&PromoUse::Settled { order: order(1) }).unwrap();
    assert_eq!(a.taken(), 0);
    assert_eq!(a.on_use(&PromoUse::Settled { order: order(1) }), None, "a repeat answer changes nothing");
}

#[test]
fn a_code_without_limit_still_counts_live_orders() {
    let mut a = code(None);
    for i in 0..50 {
        a = a.hold(&order(i), 1, &customer(i), &ctx(10, i)).unwrap().unwrap();
        a = a.on_use(&PromoUse::Taken { order: order(i), cause: None }).unwrap();
    }
    assert_eq!((a.code.used_count, a.holds.len()), (50, 0));
}

/// One customer's placement in the model below.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    /// The placement reads its gate's next number and takes a hold.
    Hold,
    /// The gate places the order under the hold (or refuses it as stale).
    Place,
    /// The placement is cut off (a crash): nobody gives the hold back.
    Vanish,
    /// The order is cancelled.
    Cancel,
    /// Time passes: due holds ask their gates, and the gates answer.
    Tick,
}

fn step() -> impl Strategy<Value = (u8, Step)> {
    (0u8..4, prop_oneof![Just(Step::Hold), Just(Step::Place), Just(Step::Vanish), Just(Step::Cancel), Just(Step::Tick)])
}

proptest! {
    /// The whole protocol between a code and four customers' gates, in any interleaving, with
    /// placements cut off between their hold and their order: the code never has more live
    /// orders than its limit, and once every hold is answered it counts exactly its live orders.
    #[test]
    fn the_limit_holds_under_any_interleaving(limit in 1u32..4, steps in proptest::collection::vec(step(), 1..80)) {
        let mut a = code(Some(limit));
        let mut gates: Vec<CustomerOrders> = (0..4).map(|i| CustomerOrders::new(customer(i))).collect();
        // Per customer: the hold in flight (number, cause), and the live orders with the code.
        let mut pending: Vec<Option<(u64, u8)>> = vec![None; 4];
        let mut live: Vec<Vec<OrderId>> = vec![Vec::new(); 4];
        let mut used: Vec<PromoUse> = Vec::new();
        let (mut now, mut cause) = (10u64, 0u8);
        for (c, s) in steps {
            let i = usize::from(c);
            match s {
                Step::Hold if pending[i].is_none() => {
                    cause = cause.wrapping_add(1);
                    let (n, id) = gates[i].next_order(3);
                    if let Ok(Some(next)) = a.hold(&id, n, &customer(c), &ctx(now, cause)) {
                        a = next;
                        pending[i] = Some((n, cause));
                    }
                }
                Step::Place => {
                    if let Some((n, k)) = pending[i].take() {
                        let (_, id) = gates[i].next_order(3);
                        if gates[i].placed + 1 == n {
                            gates[i].placed = n;
                            live[i].push(id.clone());
                            used.push(PromoUse::Taken { order: id, cause: Some(MessageId::from_bytes([k; 16])) });
                        } else {
                            // The gate refuses a stale hold; the request gives it back.
                            let id = OrderId::for_customer(3, &customer(c), n);
                            if let Some(next) = a.release(&id, MessageId::from_bytes([k; 16])) { a = next; }
                        }
                    }
                }
                Step::Vanish => { pending[i] = None; }
                Step::Cancel => {
                    if let Some(o) = live[i].pop() { used.push(PromoUse::Released { order: o }); }
                }
                Step::Tick => {
                    now += PROMO_HOLD_MS;
                    // Events on the code's lane arrive in order, before the gates' answers.
                    for u in used.drain(..) { if let Some(next) = a.on_use(&u) { a = next; } }
                    if let Some((next, asks)) = a.due_checks(now) {
                        a = next;
                        for q in asks {
                            let g = usize::from(q.customer.as_str().as_bytes()[1] - b'0');
                            if let Some(fenced) = gates[g].on_hold_check(q.number) { gates[g] = fenced; }
                            if let Some(next) = a.on_use(&PromoUse::Settled { order: q.order }) { a = next; }
                        }
                    }
                }
                Step::Hold => {}
            }
            let live_now: usize = live.iter().map(Vec::len).sum();
            prop_assert!(live_now as u64 <= u64::from(limit), "{live_now} live orders, limit {limit}");
        }
        // Quiet: every event delivered, every hold answered.
        for u in used.drain(..) { if let Some(next) = a.on_use(&u) { a = next; } }
        now += PROMO_HOLD_MS;
        if let Some((next, asks)) = a.due_checks(now) {
            a = next;
            for q in asks {
                if let Some(next) = a.on_use(&PromoUse::Settled { order: q.order }) { a = next; }
            }
        }
        let live_now: usize = live.iter().map(Vec::len).sum();
        prop_assert_eq!(a.code.used_count as usize, live_now);
        prop_assert!(a.holds.is_empty(), "every hold was answered: {:?}", a.holds);
    }
}
