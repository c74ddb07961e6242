use proptest::prelude::*;

use super::*;
use crate::domain::saga::StockStatus;
use crate::domain::{Currency, MessageId, NodeId};

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn ctx() -> Ctx {
    Ctx { now_ms: 1_000, node: NodeId::parse("n1").unwrap(), cause: MessageId::from_bytes([1; 16]) }
}

fn order() -> OrderId {
    OrderId::parse("o3-00000001-1").unwrap()
}

/// An account whose order costs `price` and is booked.
fn booked(price: i64) -> PaymentAccount {
    let e = StockEvent {
        order_id: order(),
        order_version: 2,
        status: StockStatus::Booked,
        fixed_price: eur(price),
        lines: Vec::new(),
    };
    PaymentAccount::new(order(), Currency::EUR).on_stock(&e, 2).unwrap()
}

fn open(a: &PaymentAccount) -> (PaymentAccount, Payment) {
    let (p, step) = a.open(&ctx(), &|id: &PaymentId| format!("/pay/{id}")).unwrap();
    (step.map_or_else(|| a.clone(), |(n, _)| n), p)
}

fn call(
    a: &PaymentAccount,
    p: &Payment,
    status: CallbackStatus,
    amount: i64,
) -> Result<(PaymentAccount, Payment, Option<PayEvent>), DomainError> {
    let c = Callback { payment_id: p.id.clone(), system_pay_id: "sys-1".into(), status, amount: eur(amount) };
    let (paid, step) = a.callback(&c)?;
    Ok(match step {
        Some((next, e)) => (next, paid, e),
        None => (a.clone(), paid, None),
    })
}

fn balanced(a: &PaymentAccount) -> bool {
    a.payments_total().is_ok_and(|(paid, back)| paid == a.captured && back == a.refunded)
}

#[test]
fn an_overpayment_keeps_what_is_due_and_owes_the_rest_back_on_that_payment() {
    let (a, p) = open(&booked(1_000));
    let (a, paid, e) = call(&a, &p, CallbackStatus::Succeeded, 10_000).unwrap();
    assert_eq!(paid.status, PaymentStatus::Paid);
    assert_eq!((paid.paid_amount, paid.refunded_amount), (eur(10_000), eur(9_000)));
    assert_eq!(a.net(), eur(1_000));
    assert_eq!(e.map(|e| (e.status, e.captured)), Some((PaymentStatus::Paid, eur(1_000))));
    assert!(balanced(&a));
}

#[test]
fn succeeded_needs_an_amount_above_zero_and_a_refusal_changes_nothing() {
    let (a, p) = open(&booked(1_000));
    for amount in [0, -1, -10_000] {
        assert!(matches!(call(&a, &p, CallbackStatus::Succeeded, amount), Err(DomainError::Invalid { .. })));
    }
    assert!(matches!(call(&a, &p, CallbackStatus::Failed, -5), Err(DomainError::Invalid { .. })));
    // The payment is still pending: the real callback is taken.
    let (a, paid, _) = call(&a, &p, CallbackStatus::Succeeded, 1_000).unwrap();
    assert_eq!((paid.status, a.net()), (PaymentStatus::Paid, eur(1_000)));
}

#[test]
fn a_part_then_the_rest_and_repeats_change_nothing() {
    let (a, p) = open(&booked(1_000));
    let (a, part, _) = call(&a, &p, CallbackStatus::Succeeded, 400).unwrap();
    assert_eq!(part.status, PaymentStatus::Partial);
    let (same, again, e) = call(&a, &p, CallbackStatus::Succeeded, 400).unwrap();
    assert_eq!((same.clone(), again.status, e), (a.clone(), PaymentStatus::Partial, None), "a repeat is a no-op");
    let (a, p2) = open(&a);
    assert_eq!(p2.amount, eur(600));
    let (a, rest, _) = call(&a, &p2, CallbackStatus::Succeeded, 700).unwrap();
    assert_eq!((rest.status, rest.refunded_amount, a.net()), (PaymentStatus::Paid, eur(100), eur(1_000)));
    assert!(balanced(&a));
    assert!(matches!(a.open(&ctx(), &|_| String::new()), Err(DomainError::NotPayable { .. })));
}

#[test]
fn money_taken_after_a_failure_or_a_cancellation_is_owed_back_whole() {
    let (a, p) = open(&booked(1_000));
    let (a, failed, e) = call(&a, &p, CallbackStatus::Failed, 0).unwrap();
    assert_eq!((failed.status, e.map(|e| e.status)), (PaymentStatus::Failed, Some(PaymentStatus::Failed)));
    // The payment system took the money after all.
    let (a, late, e) = call(&a, &p, CallbackStatus::Succeeded, 1_000).unwrap();
    assert_eq!(
        (late.status, late.paid_amount, late.refunded_amount),
        (PaymentStatus::Refunded, eur(1_000), eur(1_000))
    );
    assert_eq!((a.net(), e.map(|e| e.status)), (eur(0), Some(PaymentStatus::Refunded)));
    assert!(balanced(&a));
    // A failure after a success takes nothing back by itself.
    let (b, p) = open(&booked(500));
    let (b, _, _) = call(&b, &p, CallbackStatus::Succeeded, 500).unwrap();
    assert_eq!(call(&b, &p, CallbackStatus::Failed, 0).unwrap().2, None);
    let customer = CustomerId::parse("c@example.com").unwrap();
    let (b, e) = b.on_cancelled(&customer).unwrap();
    assert_eq!(
        (b.net(), b.payments[0].refunded_amount, e.map(|e| e.status)),
        (eur(0), eur(500), Some(PaymentStatus::Refunded))
    );
    assert!(balanced(&b));
}

#[test]
fn a_schema_1_account_is_read_with_its_refunds_on_its_payments() {
    let v1 = PaymentAccountV1 {
        order_id: order(),
        due: Some(eur(1_000)),
        payable: true,
        cancelled: false,
        customer_id: None,
        order_version: 2,
        payments: vec![PaymentV1 {
            id: PaymentId::nth(&order(), 1).unwrap(),
            status: PaymentStatus::Paid,
            version: 2,
            order_version: 2,
            amount: eur(1_000),
            paid_amount: eur(1_500),
            redirect_url: "/sandbox/pay/x".into(),
            system_pay_id: Some("s".into()),
            system_status: Some("SUCCEEDED".into()),
            created_at_ms: 1,
        }],
        captured: eur(1_500),
        refunded: eur(500),
    };
    let a = PaymentAccount::from(v1);
    assert_eq!(a.payments[0].refunded_amount, eur(500), "the overpayment's excess lands on its payment");
    assert!(balanced(&a));
}

proptest! {
    /// Any sequence of callbacks, repeats, new payments and a cancellation: the account always
    /// adds up, keeps between 0 and the price, and keeps nothing once cancelled.
    #[test]
    fn the_books_always_balance(price in 1i64..5_000, steps in proptest::collection::vec((0u8..5, -100i64..12_000), 1..30)) {
        let mut a = booked(price);
        let customer = CustomerId::parse("c@example.com").unwrap();
        for (what, amount) in steps {
            match what {
                0 | 1 => {
                    if let Ok((p, step)) = a.open(&ctx(), &|id: &PaymentId| id.to_string()) {
                        if let Some((n, _)) = step { a = n; }
                        let status = if what == 0 { CallbackStatus::Succeeded } else { CallbackStatus::Failed };
                        if let Ok((n, _, _)) = call(&a, &p, status, amount) { a = n; }
                    }
                }
                2 => {
                    // A repeat or late callback on a random earlier payment.
                    if let Some(p) = a.payments.last().cloned() {
                        if let Ok((n, _, _)) = call(&a, &p, CallbackStatus::Succeeded, amount) { a = n; }
                    }
                }
                3 => { if let Some((n, _)) = a.on_cancelled(&customer) { a = n; } }
                _ => {}
            }
            prop_assert!(balanced(&a));
            prop_assert!(a.net().minor() >= 0 && a.net().minor() <= price, "net {} of {price}", a.net().minor());
            prop_assert!(!a.cancelled || a.net().minor() == 0);
            for p in &a.payments {
                prop_assert!(p.refunded_amount.minor() >= 0 && p.refunded_amount.minor() <= p.paid_amount.minor());
            }
        }
    }
}
