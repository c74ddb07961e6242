//! Orders, payments and shipments as callers use them: pricing, placing an order through the
//! customer's gate (with a promo code's hold), reading and cancelling it, its timeline, the
//! payment to make and the payment system's callback, shipments, and the personal account.

use std::time::Duration;

use super::*;

/// Orders summarised at once (each summary is two reads), so a long listing cannot crowd a
/// service's pending cap.
const SUMMARIES_AT_ONCE: usize = 16;

/// One order of the personal account, with its payments and shipment.
#[derive(Debug, Clone)]
pub struct OrderSummary {
    /// The order.
    pub order: CommerceOrder,
    /// Its payments.
    pub payments: PaymentAccount,
    /// Its shipment, once there is one.
    pub shipment: Option<Shipment>,
}

impl Shop {
    /// Prices lines from the order service's price list, with an optional promo code.
    pub async fn price(&self, items: &[(Sku, Qty)], promo: Option<&Promo>) -> Result<Priced, ShopError> {
        let mut lines = Vec::with_capacity(items.len());
        for (sku, qty) in items {
            let entry = self.prices.command(sku, fresh_message_id(), PriceQuery::Get).await?;
            let Some(entry) = entry else {
                return Err(DomainError::Invalid {
                    field: "itemsList".into(),
                    reason: format!("unknown product {sku}"),
                }
                .into());
            };
            lines.push(Line { product: sku.clone(), name: entry.name, unit_price: entry.price, qty: *qty });
        }
        Ok(pricing::price(lines, promo, self.clock.now_ms(), Currency::EUR)?)
    }

    /// Places an order for a customer (one unpaid order at a time), with an optional promo code
    /// named by its token.
    pub async fn place_order(
        &self,
        customer: &CustomerId,
        items: &[(Sku, Qty)],
        promo_code: Option<&str>,
    ) -> Result<CommerceOrder, ShopError> {
        self.place_order_as(fresh_message_id(), customer, items, promo_code).await
    }

    /// The promo code `token` as the order service knows it, ready for pricing; an unknown code
    /// is a rejection (422).
    pub async fn promo_for_pricing(&self, token: &str) -> Result<Promo, ShopError> {
        let unknown = || DomainError::PromoNotApplicable { token: token.to_owned(), reason: "no such code".into() };
        if crate::domain::promo::check_token(token).is_err() {
            return Err(unknown().into());
        }
        let p = self
            .order_promos
            .command(&token.to_owned(), fresh_message_id(), PromoQuery::Get)
            .await?
            .ok_or_else(unknown)?;
        Ok(Promo { token: p.token, rule: p.rule, used_count: p.used_count })
    }

    /// Prices lines with an optional promo code named by its token (what `/calcPrice` does; the
    /// usage count it checks is the order service's copy, so a placement may still find the
    /// code used up).
    pub async fn calc_price(&self, items: &[(Sku, Qty)], promo_code: Option<&str>) -> Result<Priced, ShopError> {
        let promo = match promo_code {
            Some(t) => Some(self.promo_for_pricing(t).await?),
            None => None,
        };
        self.price(items, promo.as_ref()).await
    }

    /// Places an order under a given message id: a repeat of the id gets the first answer.
    ///
    /// With a promo code, a use is taken from the code first (a hold for the order number the
    /// customer's gate will use next), so the code's limit holds under any concurrency; the
    /// order is priced with the code as its service has it; the hold is given back when the
    /// gate refuses. An order just paid or cancelled that the gate has not heard of yet does
    /// not block the next one: the gate is given a moment to hear of it.
    pub async fn place_order_as(
        &self,
        id: MessageId,
        customer: &CustomerId,
        items: &[(Sku, Qty)],
        promo_code: Option<&str>,
    ) -> Result<CommerceOrder, ShopError> {
        match self.place_once(id, customer, items, promo_code).await {
            Err(ShopError::Domain(DomainError::UnpaidOrderExists { order })) => {
                let settled = self.order(&order).await.is_ok_and(|o| !o.status.is_unpaid());
                if !settled {
                    return Err(DomainError::UnpaidOrderExists { order }.into());
                }
                // Its PAID or CANCELLED event is on its way to the gate (milliseconds).
                let gate = self.wait_gate_free(customer, GATE_CATCH_UP_WAIT).await?;
                if gate.unpaid.as_ref() == Some(&order) {
                    return Err(DomainError::UnpaidOrderExists { order }.into());
                }
                self.place_once(id, customer, items, promo_code).await
            }
            r => r,
        }
    }

    async fn place_once(
        &self,
        id: MessageId,
        customer: &CustomerId,
        items: &[(Sku, Qty)],
        promo_code: Option<&str>,
    ) -> Result<CommerceOrder, ShopError> {
        let partition = self.router.partition_of(customer.as_str().as_bytes());
        let Some(token) = promo_code else {
            let priced = self.price(items, None).await?;
            let cmd = GateCommand::Place { priced, partition, deadlines: self.deadlines, hold: None };
            return self.gate_place(customer, id, cmd).await;
        };
        let token = token.to_owned();
        crate::domain::promo::check_token(&token)
            .map_err(|_| DomainError::PromoNotApplicable { token: token.clone(), reason: "no such code".into() })?;
        for _ in 0..PLACEMENT_ATTEMPTS_MAX {
            let (number, order) = self.customer_orders(customer).await?.next_order(partition);
            let hold_id = MessageId::derived(&[b"promo-hold", id.as_bytes(), &number.to_be_bytes()]);
            let hold = PromoCommand::Hold { order: order.clone(), number, customer: customer.clone() };
            let code = match self.promos.command(&token, hold_id, hold).await? {
                Ok(code) => code,
                // Another placement of this customer holds that number: look again.
                Err(DomainError::Raced { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let release = || async {
                let cmd = PromoCommand::Release { order: order.clone(), cause: hold_id };
                let release_id = MessageId::derived(&[b"promo-release", hold_id.as_bytes()]);
                if let Err(e) = self.promos.command(&token, release_id, cmd).await {
                    // The hold's check gives it back later.
                    tracing::warn!(error = %e, %order, "cannot give a promo hold back now");
                }
            };
            let promo = Promo { token: code.token, rule: code.rule, used_count: code.used_count };
            let placed = match self.price(items, Some(&promo)).await {
                Ok(priced) => {
                    let cmd = GateCommand::Place { priced, partition, deadlines: self.deadlines, hold: Some(number) };
                    self.gate_place(customer, id, cmd).await
                }
                Err(e) => Err(e),
            };
            match placed {
                // An order under another number: a repeat of this request, answered as the first.
                Ok(o) if o.id == order => return Ok(o),
                Ok(o) => {
                    release().await;
                    return Ok(o);
                }
                // Outcome unknown: the hold's check settles it.
                Err(e @ ShopError::Engine(_)) => return Err(e),
                Err(e) => {
                    release().await;
                    if !matches!(e, ShopError::Domain(DomainError::Raced { .. })) {
                        return Err(e);
                    }
                }
            }
        }
        Err(DomainError::Raced { what: "order placement".into() }.into())
    }

    async fn gate_place(
        &self,
        customer: &CustomerId,
        id: MessageId,
        cmd: GateCommand,
    ) -> Result<CommerceOrder, ShopError> {
        match self.gates.command(customer, id, cmd).await?? {
            GateReply::Placed(o) => Ok(o),
            GateReply::State(_) => {
                Err(EngineError::Unavailable("the gate answered a placement with its state".into()).into())
            }
        }
    }

    /// A customer's gate (their unpaid order and recent orders).
    pub async fn customer_orders(&self, customer: &CustomerId) -> Result<CustomerOrders, ShopError> {
        match self.gates.command(customer, fresh_message_id(), GateCommand::Get).await?? {
            GateReply::State(s) => Ok(s),
            GateReply::Placed(_) => {
                Err(EngineError::Unavailable("the gate answered a read with an order".into()).into())
            }
        }
    }

    /// Waits (up to `wait`) until the customer has no unpaid order, watching their gate.
    pub async fn wait_gate_free(&self, customer: &CustomerId, wait: Duration) -> Result<CustomerOrders, ShopError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut changes = self.gates.subscribe(customer).await?;
            loop {
                let g = self.customer_orders(customer).await?;
                if g.unpaid.is_none() || tokio::time::Instant::now() >= deadline {
                    return Ok(g);
                }
                match tokio::time::timeout_at(deadline, changes.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => break,
                    Err(_) => return self.customer_orders(customer).await,
                }
            }
        }
    }

    /// An order.
    pub async fn order(&self, id: &OrderId) -> Result<CommerceOrder, ShopError> {
        Ok(self.orders.command(id, fresh_message_id(), OrderCommand::Get).await??)
    }

    /// Cancels an order.
    pub async fn cancel_order(&self, id: &OrderId, by: Canceller) -> Result<CommerceOrder, ShopError> {
        Ok(self.orders.command(id, fresh_message_id(), OrderCommand::Cancel(by)).await??)
    }

    /// Waits (up to `wait`) until order `id` satisfies `done`, watching it rather than polling;
    /// returns the order as it last stood.
    pub async fn wait_order(
        &self,
        id: &OrderId,
        wait: Duration,
        done: impl Fn(&CommerceOrder) -> bool,
    ) -> Result<CommerceOrder, ShopError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut changes = self.orders.subscribe(id).await?;
            loop {
                let o = self.order(id).await?;
                if done(&o) || tokio::time::Instant::now() >= deadline {
                    return Ok(o);
                }
                match tokio::time::timeout_at(deadline, changes.changed()).await {
                    Ok(Ok(())) => continue,
                    // Passivated under us: watch the next incarnation.
                    Ok(Err(_)) => break,
                    Err(_) => return self.order(id).await,
                }
            }
        }
    }

    /// Every step of an order, oldest first, in words: the events that touched it (in the order
    /// they took effect), its shipment's creation, and the notifications sent about it.
    pub async fn timeline(&self, id: &OrderId) -> Result<Vec<TimelineStep>, ShopError> {
        let order = self.order(id).await?;
        let mut steps: Vec<TimelineStep> = order.timeline.iter().map(TimelineStep::of).collect();
        if let Ok(s) = self.shipment(id).await {
            steps.push(TimelineStep {
                at_ms: s.created_at_ms,
                service: "shipping".into(),
                event: "Shipping: the shipment was created; the parcel will be packed".into(),
                status: "PENDING".into(),
                version: 1,
                node: String::new(),
                message_id: format!("shipment-{id}"),
            });
        }
        for rec in self.order_sends(id).await? {
            let (Some(text), Some(r)) = (rec.describe(), rec.request.as_ref()) else { continue };
            steps.push(TimelineStep {
                at_ms: rec.sent_at_ms.unwrap_or(rec.created_at_ms),
                service: "notification".into(),
                event: text,
                status: rec.status.map_or("PENDING", |st| st.name()).into(),
                version: u64::from(rec.attempts),
                node: rec.sink.clone().unwrap_or_default(),
                message_id: r.id.clone(),
            });
        }
        // Stable: the order's own steps keep the order they took effect in.
        steps.sort_by_key(|s| s.at_ms);
        Ok(steps)
    }

    /// The payment to make for an order: the one in progress, or a new one for what is due.
    /// Waits up to `wait` while the order's booking completes.
    pub async fn redirect(&self, order: &OrderId, wait: Duration) -> Result<Payment, ShopError> {
        let deadline = tokio::time::Instant::now() + wait;
        let links = PaymentLinks::for_order(&*self.payment_system, order);
        loop {
            // Watch the account before asking, so a booking that lands in between still wakes us.
            let mut changes = self.payments.subscribe(order).await?;
            let cmd = PaymentCommand::Open { links: links.clone() };
            match self.payments.command(order, fresh_message_id(), cmd).await? {
                Ok(PaymentReply::Payment(p)) => return Ok(p),
                Ok(PaymentReply::Account(_)) => {
                    return Err(EngineError::Unavailable("unexpected account reply".into()).into())
                }
                Err(e @ DomainError::NotPayable { reason: NotPayableReason::NotBookedYet }) => {
                    // Woken by the account's next durable change (the booking), or by its
                    // passivation (then watch the next incarnation); at the deadline, say why.
                    if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A payment system's callback: the signature is checked, then the payment's account
    /// takes it (a repeat is a no-op).
    pub async fn callback(&self, body: &[u8], signature: &str) -> Result<Payment, ShopError> {
        let c = payment::read_callback(self.payment_system.as_ref(), body, signature)?;
        let order = c.payment_id.order().ok_or_else(|| CallbackError::Malformed("payment id names no order".into()))?;
        let id = MessageId::derived(&[b"callback", body]);
        match self.payments.command(&order, id, PaymentCommand::Callback(c)).await?? {
            PaymentReply::Payment(p) => Ok(p),
            PaymentReply::Account(_) => Err(EngineError::Unavailable("unexpected account reply".into()).into()),
        }
    }

    /// The sandbox's signed callback body for a payment (what its page posts; signed with the
    /// callback secret the store shares with its payment system).
    pub fn sandbox_callback(&self, payment: &Payment, succeeded: bool, amount: i64) -> (Vec<u8>, String) {
        let body = serde_json::json!({
            "paymentId": payment.id.as_str(),
            "systemPayId": format!("sb-{}", payment.id),
            "status": if succeeded { "SUCCEEDED" } else { "FAILED" },
            "amount": amount,
        })
        .to_string()
        .into_bytes();
        let sig = payment::sign(&self.callback_secret, &body);
        (body, sig)
    }

    /// An order's payments.
    pub async fn payments(&self, order: &OrderId) -> Result<PaymentAccount, ShopError> {
        match self.payments.command(order, fresh_message_id(), PaymentCommand::Get).await?? {
            PaymentReply::Account(a) => Ok(a),
            PaymentReply::Payment(_) => Err(EngineError::Unavailable("unexpected payment reply".into()).into()),
        }
    }

    /// An order's stock booking.
    pub async fn booking(&self, order: &OrderId) -> Result<StockBooking, ShopError> {
        Ok(self.bookings.command(order, fresh_message_id(), crate::actors::stock::BookingQuery::Get).await?)
    }

    /// A shipping operator moves an order's shipment.
    pub async fn ship(&self, order: &OrderId, to: ShipmentStatus) -> Result<Shipment, ShopError> {
        Ok(self.shipments.command(order, fresh_message_id(), ShippingCommand::Step(to)).await??)
    }

    /// An order's shipment.
    pub async fn shipment(&self, order: &OrderId) -> Result<Shipment, ShopError> {
        Ok(self.shipments.command(order, fresh_message_id(), ShippingCommand::Get).await??)
    }

    /// The summary of one order: its payments and shipment read concurrently.
    pub async fn summary(&self, order: CommerceOrder) -> Result<OrderSummary, ShopError> {
        let (payments, shipment) = futures::join!(self.payments(&order.id), self.shipment(&order.id));
        Ok(OrderSummary { payments: payments?, shipment: shipment.ok(), order })
    }

    /// The personal account: the customer's orders, newest first, each with its payments and
    /// shipment. Read through the customer's own index (the gate, owned by the customer's
    /// partition) and then each order's records by key, concurrently — never a scan, so it is
    /// whole wherever the records live.
    /// Only the orders `keep` passes are summarised.
    pub async fn account(
        &self,
        customer: &CustomerId,
        keep: impl Fn(&CommerceOrder) -> bool,
    ) -> Result<Vec<OrderSummary>, ShopError> {
        let ids: Vec<OrderId> = self.customer_orders(customer).await?.recent.iter().rev().cloned().collect();
        // An order the index names but that cannot be read now is left out (as before).
        let orders = futures::future::join_all(ids.iter().map(|id| self.order(id))).await;
        let kept: Vec<CommerceOrder> = orders.into_iter().flatten().filter(|o| keep(o)).collect();
        self.summaries(kept).await
    }

    /// The summaries of `orders`, in their order, a bounded number read at once.
    pub async fn summaries(&self, orders: Vec<CommerceOrder>) -> Result<Vec<OrderSummary>, ShopError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        stream::iter(orders).map(|o| self.summary(o)).buffered(SUMMARIES_AT_ONCE).try_collect().await
    }
}
