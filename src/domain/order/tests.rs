use proptest::prelude::*;

use super::*;
use crate::domain::saga::{BookedLine, StockEvent};
use crate::domain::{Currency, NodeId, Qty, Sku};

fn ctx(now: u64) -> Ctx {
    Ctx { now_ms: now, node: NodeId::parse("n1").unwrap(), cause: MessageId::from_bytes([9; 16]) }
}

fn eur(m: i64) -> Money {
    Money::new(m, Currency::EUR)
}

fn order() -> CommerceOrder {
    let line = OrderLine {
        id: Sku::parse("a").unwrap(),
        name: "A".into(),
        quantity: Qty::new(2),
        price: eur(500),
        dims: None,
    };
    let (o, e) = CommerceOrder::create(
        OrderId::parse("o1-x-1").unwrap(),
        CustomerId::parse("c@example.com").unwrap(),
        vec![line],
        eur(1000),
        eur(0),
        eur(1000),
        None,
        Deadlines { booking_ms: 1_000, payment_ms: 10_000 },
        &ctx(100),
        MessageId::from_bytes([1; 16]),
    );
    assert_eq!(e.status, OrderStatus::BookingPending);
    o
}

fn src(version: u64, n: u8) -> Source {
    Source { version, node: "n2".into(), message_id: MessageId::from_bytes([n; 16]) }
}

fn stock(status: StockStatus) -> StockEvent {
    StockEvent {
        order_id: OrderId::parse("o1-x-1").unwrap(),
        order_version: 1,
        status,
        fixed_price: eur(1000),
        lines: vec![BookedLine { sku: Sku::parse("a").unwrap(), qty: Qty::new(2), dims: None }],
    }
}

fn pay(status: PaymentStatus, captured: i64) -> PayEvent {
    PayEvent {
        order_id: OrderId::parse("o1-x-1").unwrap(),
        payment_id: None,
        status,
        captured: eur(captured),
        due: eur(1000),
    }
}

#[test]
fn booked_after_pay_pending_is_discarded() {
    // Hard case 1: PayEvent(PENDING) overtakes StockEvent(BOOKED).
    let o = order();
    let t = o.on_payment(&pay(PaymentStatus::Pending, 0), &src(1, 2), &ctx(200));
    assert_eq!(t.next.status, OrderStatus::PayPending);
    assert_eq!(
        t.deadline,
        DeadlineChange { clear: Some(1_100), set: Some(10_200) },
        "payment deadline replaces booking's"
    );
    let late = t.next.on_stock(&stock(StockStatus::Booked), &src(2, 3), &ctx(300));
    assert_eq!(late.next.status, OrderStatus::PayPending);
    assert_eq!(late.event, None);
    assert!(late.next.timeline.last().unwrap().event.starts_with("discarded StockEvent(BOOKED)"));
}

#[test]
fn stale_versions_are_discarded_per_source() {
    let o = order();
    let booked = o.on_stock(&stock(StockStatus::Booked), &src(2, 2), &ctx(200)).next;
    assert_eq!(booked.status, OrderStatus::Booked);
    let again = booked.on_stock(&stock(StockStatus::Error), &src(1, 3), &ctx(300));
    assert_eq!(again.next.status, OrderStatus::Booked, "an older stock event cannot cancel");
    let paid = booked.on_payment(&pay(PaymentStatus::Paid, 1000), &src(3, 4), &ctx(400)).next;
    assert_eq!(paid.status, OrderStatus::Paid);
    let old = paid.on_payment(&pay(PaymentStatus::Failed, 0), &src(2, 5), &ctx(500));
    assert_eq!(old.next.status, OrderStatus::Paid, "an older payment failure cannot cancel a paid order");
}

#[test]
fn partial_then_full_payment() {
    let o = order().on_stock(&stock(StockStatus::Booked), &src(1, 2), &ctx(200)).next;
    let part = o.on_payment(&pay(PaymentStatus::Partial, 400), &src(2, 3), &ctx(300)).next;
    assert_eq!((part.status, part.paid_amount), (OrderStatus::PaidPartial, eur(400)));
    let pending = part.on_payment(&pay(PaymentStatus::Pending, 400), &src(3, 4), &ctx(400)).next;
    assert_eq!(pending.status, OrderStatus::PayPending);
    let full = pending.on_payment(&pay(PaymentStatus::Paid, 1000), &src(4, 5), &ctx(500));
    assert_eq!(full.next.status, OrderStatus::Paid);
    assert_eq!(full.deadline.clear, Some(10_200));
    assert_eq!(full.deadline.set, None);
}

#[test]
fn deadlines_cancel_only_unpaid_orders_and_only_their_own() {
    let o = order();
    assert!(o.on_deadline(1_100, &ctx(1_099), MessageId::from_bytes([2; 16])).is_none(), "not yet due");
    assert!(o.on_deadline(999, &ctx(5_000), MessageId::from_bytes([2; 16])).is_none(), "not its deadline");
    let t = o.on_deadline(1_100, &ctx(1_100), MessageId::from_bytes([2; 16])).unwrap();
    assert_eq!((t.next.status, t.next.cancel_reason), (OrderStatus::Cancelled, Some(CancelReason::Timeout)));
    let paid = o.on_payment(&pay(PaymentStatus::Paid, 1000), &src(1, 3), &ctx(200)).next;
    assert!(paid.on_deadline(1_100, &ctx(2_000), MessageId::from_bytes([2; 16])).is_none());
}

#[test]
fn cancellation_rights() {
    let o = order();
    let other = CustomerId::parse("x@example.com").unwrap();
    assert_eq!(
        o.cancel(&Canceller::Customer(other), &ctx(1), MessageId::from_bytes([3; 16])),
        Err(DomainError::NotOwner)
    );
    let paid = o.on_payment(&pay(PaymentStatus::Paid, 1000), &src(1, 3), &ctx(200)).next;
    let me = paid.customer_id.clone();
    assert!(matches!(
        paid.cancel(&Canceller::Customer(me), &ctx(1), MessageId::from_bytes([3; 16])),
        Err(DomainError::WrongState { .. })
    ));
    let t = paid.cancel(&Canceller::Operator, &ctx(1), MessageId::from_bytes([3; 16])).unwrap();
    assert_eq!(t.next.cancel_reason, Some(CancelReason::ByOperator));
}

#[derive(Debug, Clone)]
enum In {
    Stock(StockStatus, u64),
    Pay(PaymentStatus, i64, u64),
    Ship(ShipmentStatus, u64),
    Deadline(bool),
    CancelCustomer,
    CancelOperator,
}

fn arb_input() -> impl Strategy<Value = In> {
    prop_oneof![
        (prop_oneof![Just(StockStatus::Booked), Just(StockStatus::Error)], 1u64..6).prop_map(|(s, v)| In::Stock(s, v)),
        (
            prop_oneof![
                Just(PaymentStatus::Pending),
                Just(PaymentStatus::Partial),
                Just(PaymentStatus::Paid),
                Just(PaymentStatus::Failed),
                Just(PaymentStatus::Refunded)
            ],
            0i64..1200,
            1u64..8
        )
            .prop_map(|(s, c, v)| In::Pay(s, c, v)),
        (
            prop_oneof![
                Just(ShipmentStatus::Assembled),
                Just(ShipmentStatus::Shipped),
                Just(ShipmentStatus::Delivered)
            ],
            1u64..5
        )
            .prop_map(|(s, v)| In::Ship(s, v)),
        any::<bool>().prop_map(In::Deadline),
        Just(In::CancelCustomer),
        Just(In::CancelOperator),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives, in whatever order and however often: the version grows by one per
    /// change, a cancelled or completed order never changes status again, a paid order never
    /// becomes unpaid, and events are emitted exactly when the status changes.
    #[test]
    fn the_order_only_moves_forward(inputs in prop::collection::vec(arb_input(), 0..40)) {
        let mut o = order();
        let mut now = 200;
        for (i, input) in inputs.iter().enumerate() {
            now += 10;
            let c = ctx(now);
            let n = u8::try_from(i % 250).unwrap();
            let before = o.clone();
            let t = match input {
                In::Stock(s, v) => Some(o.on_stock(&stock(*s), &src(*v, n), &c)),
                In::Pay(s, cap, v) => Some(o.on_payment(&pay(*s, *cap), &src(*v, n), &c)),
                In::Ship(s, v) => Some(o.on_shipping(&ShippingEvent { order_id: o.id.clone(), customer_id: o.customer_id.clone(), status: *s }, &src(*v, n), &c)),
                In::Deadline(own) => {
                    let due = if *own { o.deadline_ms.unwrap_or(0) } else { 1 };
                    o.on_deadline(due, &ctx(now + 100_000), MessageId::from_bytes([n; 16]))
                }
                In::CancelCustomer => o.cancel(&Canceller::Customer(o.customer_id.clone()), &c, MessageId::from_bytes([n; 16])).ok(),
                In::CancelOperator => o.cancel(&Canceller::Operator, &c, MessageId::from_bytes([n; 16])).ok(),
            };
            let Some(t) = t else { continue };
            prop_assert_eq!(t.next.version, before.version + 1);
            prop_assert_eq!(t.event.is_some(), t.next.status != before.status);
            if matches!(before.status, OrderStatus::Cancelled | OrderStatus::Completed) {
                prop_assert_eq!(t.next.status, before.status);
            }
            if before.status.is_paid() {
                prop_assert!(t.next.status.is_paid() || t.next.status == OrderStatus::Cancelled);
                if t.next.status == OrderStatus::Cancelled {
                    prop_assert_eq!(before.status, OrderStatus::Paid, "only an operator cancels a paid order, before shipping");
                }
            }
            if !t.next.status.is_unpaid() {
                prop_assert_eq!(t.next.deadline_ms, None);
            }
            o = t.next;
        }
    }
}
