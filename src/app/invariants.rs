//! The invariant checker: reads every service's stored aggregates and reports what breaks the
//! store's invariants (DESIGN.md): stock conserved, no PAID without booking and no booking held
//! by a cancelled order, money balanced, at most one unpaid order per customer, no saga past its
//! deadline, promo codes within their limits. Usable offline (`bazaar verify`), from tests, on the simulation's stores, and
//! online (`GET /invariants`).
//!
//! Online, events in flight make some checks briefly false (an order just cancelled still holds
//! stock until its booking hears of it); callers that need a verdict wait until the outbox is
//! drained. The checker reads through [`StateSource`], never through a service.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::actors::kind::EntityKind;
use crate::actors::order::{GateKind, OrderKind};
use crate::actors::payment::PaymentAccountKind;
use crate::actors::promo::PromoKind;
use crate::actors::stock::{StockBookingKind, StockItemKind};
use crate::domain::booking::LineStatus;
use crate::domain::saga::{OrderStatus, StockStatus};
use crate::persistence::StateSource;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name.
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What breaks it.
    pub violations: Vec<String>,
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether every check holds.
    pub ok: bool,
    /// When, ms.
    pub checked_at_ms: u64,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Every violation, one line each (for test failures).
    pub fn violations(&self) -> Vec<String> {
        self.checks.iter().flat_map(|c| c.violations.iter().map(move |v| format!("{}: {v}", c.name))).collect()
    }
}

fn load<K: EntityKind>(src: &dyn StateSource, problems: &mut Vec<String>) -> Vec<(String, K::State)> {
    match src.states(K::SERVICE, K::AGGREGATE) {
        Err(e) => {
            problems.push(format!("{}/{}: {e}", K::SERVICE, K::AGGREGATE));
            Vec::new()
        }
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(k, schema, body)| {
                let key = match K::parse_key(&k) {
                    Ok(key) => key,
                    Err(e) => {
                        problems.push(format!("{}/{} key {k:?}: {e}", K::SERVICE, K::AGGREGATE));
                        return None;
                    }
                };
                match K::decode_state(&key, schema, &body) {
                    Ok(s) => Some((k, s)),
                    Err(e) => {
                        problems.push(format!("{}/{} {k}: {e}", K::SERVICE, K::AGGREGATE));
                        None
                    }
                }
            })
            .collect(),
    }
}

/// The `(service, aggregate)`s the checks read (what a cluster gathers from every node).
pub fn sources() -> Vec<(&'static str, &'static str)> {
    vec![
        (StockItemKind::SERVICE, StockItemKind::AGGREGATE),
        (StockBookingKind::SERVICE, StockBookingKind::AGGREGATE),
        (OrderKind::SERVICE, OrderKind::AGGREGATE),
        (PaymentAccountKind::SERVICE, PaymentAccountKind::AGGREGATE),
        (GateKind::SERVICE, GateKind::AGGREGATE),
        (PromoKind::SERVICE, PromoKind::AGGREGATE),
    ]
}

/// Runs every check at time `now_ms`; an unpaid order is "past its deadline" only after
/// `grace_ms` more (timers fire on a tick).
pub fn check(src: &dyn StateSource, now_ms: u64, grace_ms: u64) -> Report {
    let mut unreadable = Vec::new();
    let items = load::<StockItemKind>(src, &mut unreadable);
    let bookings: HashMap<String, _> = load::<StockBookingKind>(src, &mut unreadable).into_iter().collect();
    let orders = load::<OrderKind>(src, &mut unreadable);
    let accounts: HashMap<String, _> = load::<PaymentAccountKind>(src, &mut unreadable).into_iter().collect();
    let gates = load::<GateKind>(src, &mut unreadable);
    let orders: Vec<_> = orders.into_iter().filter_map(|(k, o)| o.map(|o| (k, o))).collect();
    let order_by_id: HashMap<&str, _> = orders.iter().map(|(k, o)| (k.as_str(), o)).collect();

    // 1. Stock conserved, and the units an item holds booked are exactly the booked lines of
    //    the orders' bookings for it.
    let mut stock = Vec::new();
    let mut held_by_bookings: BTreeMap<String, u64> = BTreeMap::new();
    for b in bookings.values() {
        for (sku, qty) in b.held() {
            *held_by_bookings.entry(sku.to_string()).or_default() += u64::from(qty.get());
        }
    }
    for (sku, item) in &items {
        if let Err(e) = item.check_invariant() {
            stock.push(e);
        }
        let held = held_by_bookings.remove(sku).unwrap_or(0);
        let booked = u64::from(item.levels().booked.get());
        if held != booked {
            stock.push(format!("item {sku} has {booked} booked but the orders' bookings hold {held}"));
        }
    }
    for (sku, held) in held_by_bookings {
        stock.push(format!("bookings hold {held} of {sku}, an item that does not exist"));
    }

    // 2. No PAID without booking; no booking held by a cancelled order.
    let mut booked = Vec::new();
    for (id, o) in &orders {
        let b = bookings.get(id);
        if o.status.is_paid() {
            let ok = b.is_some_and(|b| {
                !b.cancelled && matches!(b.status, Some(StockStatus::Booked | StockStatus::Assembled))
            });
            if !ok {
                booked.push(format!("order {id} is {} but its stock is not booked", o.status.name()));
            }
        }
        if o.status == OrderStatus::Cancelled {
            if let Some(b) = b {
                if b.lines.iter().any(|l| l.status == LineStatus::Booked) {
                    booked.push(format!("order {id} is cancelled but still holds booked stock"));
                }
            }
        }
    }
    for (id, b) in &bookings {
        if b.lines.iter().any(|l| l.status == LineStatus::Booked) && !order_by_id.contains_key(id.as_str()) {
            booked.push(format!("booking {id} holds stock for an order that does not exist"));
        }
    }

    // 3. Money, per order: what each payment took minus what it owes back adds up to the
    //    account's captured − refunded; that is the price once paid, 0 once cancelled, never
    //    more than the price and never below 0.
    let mut money = Vec::new();
    for (id, a) in &accounts {
        match a.payments_total() {
            Ok((paid, back)) if paid != a.captured || back != a.refunded => money.push(format!(
                "payments of {id} took {} and owe back {}, but the account says captured {} and refunded {}",
                paid.minor(),
                back.minor(),
                a.captured.minor(),
                a.refunded.minor()
            )),
            Ok(_) => {}
            Err(e) => money.push(format!("payments of {id} cannot be added up: {e}")),
        }
        for p in &a.payments {
            if p.refunded_amount.minor() < 0 || p.refunded_amount.minor() > p.paid_amount.minor() {
                money.push(format!(
                    "payment {} took {} but owes back {}",
                    p.id,
                    p.paid_amount.minor(),
                    p.refunded_amount.minor()
                ));
            }
        }
    }
    for (id, o) in &orders {
        let net = accounts.get(id).map_or(0, |a| a.net().minor());
        let price = o.fixed_price.minor();
        if o.status.is_paid() && net != price {
            money.push(format!("order {id} is {} for {price} but {net} is kept", o.status.name()));
        }
        if o.status == OrderStatus::Cancelled && net != 0 {
            money.push(format!("order {id} is cancelled but {net} is still kept"));
        }
        if net > price {
            money.push(format!("order {id} costs {price} but {net} is kept"));
        }
        if net < 0 {
            money.push(format!("order {id} gave back {} more than it took", -net));
        }
    }
    for (id, a) in &accounts {
        if a.net().minor() != 0 && !order_by_id.contains_key(id.as_str()) {
            money.push(format!("payments of {id} captured money for an order that does not exist"));
        }
    }

    // 4. At most one unpaid order per customer, and the gate knows it.
    let mut unpaid = Vec::new();
    let mut per_customer: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (id, o) in &orders {
        if o.status.is_unpaid() {
            per_customer.entry(o.customer_id.to_string()).or_default().push(id);
        }
    }
    for (c, ids) in &per_customer {
        if ids.len() > 1 {
            unpaid.push(format!("customer {c} has {} unpaid orders: {}", ids.len(), ids.join(", ")));
        }
    }
    for (c, g) in &gates {
        let actual = per_customer.get(c).and_then(|ids| ids.first().copied());
        if let Some(actual) = actual {
            if g.unpaid.as_ref().map(|o| o.as_str()) != Some(actual) {
                unpaid.push(format!("customer {c}'s gate does not know its unpaid order {actual}"));
            }
        }
        // The other way round: a gate holding an order that is no longer unpaid (or does not
        // exist) blocks its customer for good.
        if let Some(held) = &g.unpaid {
            match order_by_id.get(held.as_str()) {
                Some(o) if o.status.is_unpaid() => {}
                Some(o) => unpaid.push(format!(
                    "customer {c}'s gate still holds order {held}, which is {}: the customer cannot order again",
                    o.status.name()
                )),
                None => unpaid.push(format!("customer {c}'s gate holds order {held}, which does not exist")),
            }
        }
    }

    // 6. Promo codes: never more live orders with a code than its limit, and the code counts
    //    exactly the live orders that hold it (once every event is delivered).
    let mut promo = Vec::new();
    let codes = load::<PromoKind>(src, &mut unreadable);
    let mut live: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, o) in &orders {
        if let (Some(t), false) = (&o.promo_code, o.status == OrderStatus::Cancelled) {
            *live.entry(t.as_str()).or_default() += 1;
        }
    }
    for (token, a) in &codes {
        let n = live.remove(token.as_str()).unwrap_or(0);
        if let Some(limit) = a.code.rule.usage_limit {
            if n > u64::from(limit) {
                promo.push(format!("promo code {token} is used by {n} live orders; its limit is {limit}"));
            }
        }
        if u64::from(a.code.used_count) != n {
            promo.push(format!("promo code {token} counts {} uses but {n} live orders hold it", a.code.used_count));
        }
    }
    for (token, n) in live {
        promo.push(format!("{n} live orders use promo code {token}, which does not exist"));
    }

    // 5. No saga past its deadline.
    let mut deadlines = Vec::new();
    for (id, o) in &orders {
        if let Some(d) = o.deadline_ms {
            if o.status.is_unpaid() && now_ms > d.saturating_add(grace_ms) {
                deadlines.push(format!("order {id} is {} {} ms past its deadline", o.status.name(), now_ms - d));
            }
        }
    }

    let mut checks = vec![
        Check { name: "stock conserved", ok: stock.is_empty(), violations: stock },
        Check { name: "no PAID without booking", ok: booked.is_empty(), violations: booked },
        Check { name: "money balanced", ok: money.is_empty(), violations: money },
        Check { name: "at most one unpaid order per customer", ok: unpaid.is_empty(), violations: unpaid },
        Check { name: "no saga past its deadline", ok: deadlines.is_empty(), violations: deadlines },
        Check { name: "promo codes within their limits", ok: promo.is_empty(), violations: promo },
    ];
    if !unreadable.is_empty() {
        checks.push(Check { name: "records readable", ok: false, violations: unreadable });
    }
    Report { ok: checks.iter().all(|c| c.ok), checked_at_ms: now_ms, checks }
}

#[cfg(test)]
mod tests;
