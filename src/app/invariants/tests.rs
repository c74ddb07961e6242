//! The checker fed states that break each invariant: it must name what is broken, and find
//! nothing in states that hold.

use std::collections::BTreeMap;

use super::*;
use crate::domain::gate::CustomerOrders;
use crate::domain::order::{CommerceOrder, Deadlines};
use crate::domain::payment::{Callback, CallbackStatus, PaymentAccount};
use crate::domain::pricing::{Discount, Rule};
use crate::domain::promo::PromoAccount;
use crate::domain::saga::StockEvent;
use crate::domain::{Ctx, Currency, CustomerId, MessageId, Money, NodeId, OrderId, PaymentId};

/// Aggregates kept in memory, as the store would return them.
#[derive(Default)]
struct Source(BTreeMap<String, Vec<(String, u16, Vec<u8>)>>);

impl Source {
    fn put<K: EntityKind>(&mut self, key: &str, state: &K::State) {
        let (schema, body) = K::encode_state(state).unwrap();
        self.0.entry(format!("{}/{}", K::SERVICE, K::AGGREGATE)).or_default().push((key.into(), schema, body));
    }
}

impl StateSource for Source {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String> {
        Ok(self.0.get(&format!("{service}/{aggregate}")).cloned().unwrap_or_default())
    }
}

fn eur(m: i64) -> Money {
    Money::new(m, Currency::EUR)
}

fn ctx() -> Ctx {
    Ctx { now_ms: 1_000, node: NodeId::parse("n1").unwrap(), cause: MessageId::from_bytes([1; 16]) }
}

fn customer(i: u32) -> CustomerId {
    CustomerId::parse(&format!("c{i}@example.com")).unwrap()
}

fn order(i: u32, promo: Option<&str>, status: OrderStatus) -> CommerceOrder {
    let id = OrderId::for_customer(1, &customer(i), 1);
    let deadlines = Deadlines { booking_ms: 1_000_000, payment_ms: 1_000_000 };
    let (mut o, _) = CommerceOrder::create(
        id,
        customer(i),
        Vec::new(),
        eur(1_000),
        eur(0),
        eur(1_000),
        promo.map(str::to_owned),
        deadlines,
        &ctx(),
        MessageId::from_bytes([2; 16]),
    );
    o.status = status;
    o
}

fn code(limit: u32, used: u32) -> PromoAccount {
    let rule = Rule {
        discount: Discount::Percent(10),
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: Some(limit),
    };
    let mut a = PromoAccount::absent("ONE", rule.clone()).create("", rule, &ctx()).unwrap();
    a.code.used_count = used;
    a
}

fn check_named(src: &Source, name: &str) -> Vec<String> {
    let r = check(src, 1_000, 0);
    r.checks.iter().find(|c| c.name == name).unwrap().violations.clone()
}

#[test]
fn promo_overuse_is_reported() {
    let mut src = Source::default();
    for i in 0..2 {
        let o = order(i, Some("ONE"), OrderStatus::BookingPending);
        src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    }
    src.put::<PromoKind>("ONE", &code(1, 2));
    let v = check_named(&src, "promo codes within their limits");
    assert_eq!(v, vec!["promo code ONE is used by 2 live orders; its limit is 1".to_owned()]);
    // A cancelled order holds no use; a count that disagrees with the orders is reported too.
    let mut src = Source::default();
    let o = order(0, Some("ONE"), OrderStatus::Cancelled);
    src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    src.put::<PromoKind>("ONE", &code(1, 1));
    assert_eq!(
        check_named(&src, "promo codes within their limits"),
        vec!["promo code ONE counts 1 uses but 0 live orders hold it".to_owned()]
    );
    src.put::<PromoKind>("ONE", &code(1, 0));
    src.0.get_mut("promo/code").unwrap().remove(0);
    assert!(check_named(&src, "promo codes within their limits").is_empty());
}

fn paid_account(o: &CommerceOrder, amount: i64) -> PaymentAccount {
    let e = StockEvent {
        order_id: o.id.clone(),
        order_version: 2,
        status: crate::domain::saga::StockStatus::Booked,
        fixed_price: o.fixed_price,
        lines: Vec::new(),
    };
    let a = PaymentAccount::new(o.id.clone(), Currency::EUR).on_stock(&e, 2).unwrap();
    let (p, step) = a.open(&ctx(), &|id: &PaymentId| id.to_string()).unwrap();
    let a = step.unwrap().0;
    let c = Callback {
        payment_id: p.id,
        system_pay_id: "s".into(),
        status: CallbackStatus::Succeeded,
        amount: eur(amount),
    };
    a.callback(&c).unwrap().1.unwrap().0
}

#[test]
fn unbalanced_money_is_reported() {
    let o = order(0, None, OrderStatus::Paid);
    let good = paid_account(&o, 5_000);
    let mut src = Source::default();
    src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    src.put::<PaymentAccountKind>(o.id.as_str(), &good);
    assert!(check_named(&src, "money balanced").is_empty(), "an overpayment owed back balances");
    // The excess kept instead of owed back (what the store did before).
    let mut kept = good.clone();
    kept.payments[0].refunded_amount = eur(0);
    kept.refunded = eur(0);
    let mut src = Source::default();
    src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    src.put::<PaymentAccountKind>(o.id.as_str(), &kept);
    let v = check_named(&src, "money balanced");
    assert!(v.iter().any(|m| m.contains("is PAID for 1000 but 5000 is kept")), "{v:?}");
    assert!(v.iter().any(|m| m.contains("costs 1000 but 5000 is kept")), "{v:?}");
    // Payments that do not add up to the account.
    let mut off = good;
    off.payments[0].paid_amount = eur(4_000);
    let mut src = Source::default();
    src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    src.put::<PaymentAccountKind>(o.id.as_str(), &off);
    let v = check_named(&src, "money balanced");
    assert!(v.iter().any(|m| m.contains("took 4000 and owe back 4000, but the account says captured 5000")), "{v:?}");
}

#[test]
fn a_gate_that_does_not_know_its_customers_unpaid_order_is_reported() {
    let o = order(0, None, OrderStatus::BookingPending);
    let mut src = Source::default();
    src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
    src.put::<GateKind>(customer(0).as_str(), &CustomerOrders::new(customer(0)));
    let v = check_named(&src, "at most one unpaid order per customer");
    assert_eq!(v.len(), 1, "{v:?}");
}

#[test]
fn a_gate_that_still_holds_a_settled_order_is_reported() {
    for status in [OrderStatus::Paid, OrderStatus::Cancelled] {
        let o = order(0, None, status);
        let mut src = Source::default();
        src.put::<OrderKind>(o.id.as_str(), &Some(o.clone()));
        let mut gate = CustomerOrders::new(customer(0));
        gate.unpaid = Some(o.id.clone());
        src.put::<GateKind>(customer(0).as_str(), &gate);
        let v = check_named(&src, "at most one unpaid order per customer");
        assert_eq!(v.len(), 1, "{status:?}: {v:?}");
        assert!(v[0].contains("cannot order again"), "{v:?}");
    }
    let mut src = Source::default();
    let mut gate = CustomerOrders::new(customer(1));
    gate.unpaid = Some(OrderId::for_customer(1, &customer(1), 9));
    src.put::<GateKind>(customer(1).as_str(), &gate);
    assert!(check_named(&src, "at most one unpaid order per customer")[0].contains("does not exist"));
}
