//! The store's operations as callers use them (the HTTP front, the tests, the benches): each
//! is a request to one service's entity, routed by key. Only request-level work happens here —
//! pricing an order from the order service's own price list, waiting briefly for an order to
//! become payable, checking a payment callback's signature. The saga itself is choreographed by
//! the services' events, never driven from here.

use std::sync::Arc;
use std::time::Duration;

use crate::actors::auth::{revocation_group, RevocationCommand, RevocationKind, UserCommand, UserKind};
use crate::actors::catalogue::{ProductCommand, ProductKind, ProjectionQuery, StockProjection, StockProjectionKind};
use crate::actors::customer::{CustomerCommand, CustomerKind};
use crate::actors::fresh_message_id;
use crate::actors::kind::EntityKind;
use crate::actors::notification::{NotificationsKind, NotificationsQuery, SendRecordKind};
use crate::actors::order::{GateCommand, GateKind, GateReply, OrderCommand, OrderKind, PriceKind, PriceQuery};
use crate::actors::payment::{
    self, CallbackError, HostedCheckout, PaymentAccountKind, PaymentCommand, PaymentLinks, PaymentReply, PaymentSystem,
    Sandbox,
};
use crate::actors::promo::{OrderPromoKind, PromoCommand, PromoKind, PromoQuery};
use crate::actors::shipping::{ShipmentKind, ShippingCommand};
use crate::actors::stock::{StockBookingKind, StockItemKind, StockItemView};
use crate::actors::EngineError;
use crate::app::invariants::{self, Report};
use crate::app::node::Node;
use crate::clock::Clock;
use crate::domain::booking::StockBooking;
use crate::domain::catalogue::Product;
use crate::domain::customer::{Communication, Customer, ProfileChange};
use crate::domain::gate::CustomerOrders;
use crate::domain::notification::{Notifications, SendRecord};
use crate::domain::order::{Canceller, CommerceOrder, Deadlines, TimelineEntry};
use crate::domain::payment::{Payment, PaymentAccount};
use crate::domain::pricing::{self, Line, Priced, Promo};
use crate::domain::saga::ShipmentStatus;
use crate::domain::shipping::Shipment;
use crate::domain::stock::{Dimensions, StockCommand};
use crate::domain::{Currency, CustomerId, DomainError, MessageId, Money, NotPayableReason, OrderId, Qty, Sku};
use crate::persistence::Store;
use crate::supervisors::Service;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopError {
    /// The business said no (a reply value of the aggregate).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The engine could not handle it (overload, unavailable, not local).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A payment callback was refused.
    #[error(transparent)]
    Callback(#[from] CallbackError),
}

/// One step of an order's timeline, as shoppers and operators read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineStep {
    /// When it took effect, ms.
    pub at_ms: u64,
    /// The service it came from.
    pub service: String,
    /// What happened, in words.
    pub event: String,
    /// The status it carried.
    pub status: String,
    /// The sending aggregate's version (for a notification: its attempts).
    pub version: u64,
    /// The node it came from (for a notification: where it went).
    pub node: String,
    /// The message (or record) id.
    pub message_id: String,
}

impl TimelineStep {
    fn of(e: &TimelineEntry) -> TimelineStep {
        TimelineStep {
            at_ms: e.at_ms,
            service: e.service.clone(),
            event: e.describe(),
            status: e.status.clone(),
            version: e.version,
            node: e.node.clone(),
            message_id: e.message_id.to_string(),
        }
    }
}

/// How long a placement waits for the customer's gate to hear that their last order was paid
/// or cancelled (it is told by an event, a few milliseconds behind the order).
const GATE_CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Placements tried when another placement of the same customer took the order number a
/// promo code's hold was taken for.
const PLACEMENT_ATTEMPTS_MAX: usize = 3;

/// Handles to every service of a node, and the store's settings.
#[derive(Clone)]
pub struct Shop {
    products: Service<ProductKind>,
    stock_levels: Service<StockProjectionKind>,
    customers: Service<CustomerKind>,
    gates: Service<GateKind>,
    orders: Service<OrderKind>,
    prices: Service<PriceKind>,
    items: Service<StockItemKind>,
    bookings: Service<StockBookingKind>,
    payments: Service<PaymentAccountKind>,
    shipments: Service<ShipmentKind>,
    notifications: Service<NotificationsKind>,
    users: Service<UserKind>,
    revocations: Service<RevocationKind>,
    promos: Service<PromoKind>,
    order_promos: Service<OrderPromoKind>,
    idempotency: Service<crate::actors::idempotency::IdempotencyKind>,
    payment_system: Arc<dyn PaymentSystem>,
    payment_links: PaymentLinks,
    sandbox: Option<Arc<Sandbox>>,
    callback_secret: Arc<[u8]>,
    deadlines: Deadlines,
    store: Store,
    clock: Arc<dyn Clock>,
    router: Arc<crate::cluster::Router>,
}

fn need<K: EntityKind>(node: &Node) -> Result<Service<K>, EngineError> {
    node.service::<K>()
        .ok_or_else(|| EngineError::Unavailable(format!("the node runs no {}/{} service", K::SERVICE, K::AGGREGATE)))
}

impl Shop {
    /// The shop of a node started with `NodeBuilder::store`.
    pub fn new(node: &Node) -> Result<Shop, EngineError> {
        let o = node.options();
        let (payment_system, sandbox): (Arc<dyn PaymentSystem>, _) = match &o.payments.checkout_url {
            Some(url) if !o.payments.sandbox => (Arc::new(HostedCheckout::new(url, &o.payment_secret)), None),
            _ => {
                let s = Arc::new(Sandbox::new(&o.payment_secret));
                (s.clone(), Some(s))
            }
        };
        Ok(Shop {
            products: need(node)?,
            stock_levels: need(node)?,
            customers: need(node)?,
            gates: need(node)?,
            orders: need(node)?,
            prices: need(node)?,
            items: need(node)?,
            bookings: need(node)?,
            payments: need(node)?,
            shipments: need(node)?,
            notifications: need(node)?,
            users: need(node)?,
            revocations: need(node)?,
            promos: need(node)?,
            order_promos: need(node)?,
            idempotency: need(node)?,
            payment_links: PaymentLinks::of(payment_system.clone()),
            payment_system,
            sandbox,
            callback_secret: o.payment_secret.clone().into(),
            deadlines: o.deadlines,
            store: node.store().clone(),
            clock: o.clock.clone(),
            router: node.router().clone(),
        })
    }

    /// The stock item service (for tools that drive it directly).
    pub fn items_service(&self) -> &Service<StockItemKind> {
        &self.items
    }

    /// The built-in sandbox payment system, unless the store uses an external one.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_deref()
    }

    /// Adds a product to the catalogue.
    pub async fn add_product(
        &self,
        id: &Sku,
        name: &str,
        description: &str,
        price: Money,
        photo: Option<String>,
    ) -> Result<Product, ShopError> {
        let cmd = ProductCommand::Add { name: name.into(), description: description.into(), price, photo };
        Ok(self.products.command(id, fresh_message_id(), cmd).await??)
    }

    /// A product.
    pub async fn product(&self, id: &Sku) -> Result<Product, ShopError> {
        Ok(self.products.command(id, fresh_message_id(), ProductCommand::Get).await??)
    }

    /// Stock received from a supplier.
    pub async fn receive_stock(
        &self,
        sku: &Sku,
        qty: Qty,
        dims: Option<Dimensions>,
    ) -> Result<StockItemView, ShopError> {
        Ok(self.items.command(sku, fresh_message_id(), StockCommand::Receive { qty, dims }).await??)
    }

    /// A stock item as the stock service has it.
    pub async fn stock_item(&self, sku: &Sku) -> Result<StockItemView, ShopError> {
        Ok(self.items.command(sku, fresh_message_id(), StockCommand::Get).await??)
    }

    /// The catalogue's (eventually consistent) view of an item's stock.
    pub async fn stock_levels(&self, sku: &Sku) -> Result<StockProjection, ShopError> {
        Ok(self.stock_levels.command(sku, fresh_message_id(), ProjectionQuery::Get).await?)
    }

    /// Signs a customer up.
    pub async fn register_customer(
        &self,
        id: &CustomerId,
        name: &str,
        last_name: &str,
        communications: Vec<Communication>,
    ) -> Result<Customer, ShopError> {
        let cmd = CustomerCommand::Register { name: name.into(), last_name: last_name.into(), communications };
        Ok(self.customers.command(id, fresh_message_id(), cmd).await??)
    }

    /// Changes a customer's profile.
    pub async fn update_customer(&self, id: &CustomerId, change: ProfileChange) -> Result<Customer, ShopError> {
        Ok(self.customers.command(id, fresh_message_id(), CustomerCommand::Update(change)).await??)
    }

    /// A customer.
    pub async fn customer(&self, id: &CustomerId) -> Result<Customer, ShopError> {
        Ok(self.customers.command(id, fresh_message_id(), CustomerCommand::Get).await??)
    }

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

    /// Creates a promo code.
    pub async fn create_promo(
        &self,
        token: &str,
        description: &str,
        rule: pricing::Rule,
    ) -> Result<crate::domain::promo::Promocode, ShopError> {
        crate::domain::promo::check_token(token)?;
        let cmd = PromoCommand::Create { description: description.into(), rule };
        Ok(self.promos.command(&token.to_owned(), fresh_message_id(), cmd).await??)
    }

    /// A promo code as its service has it.
    pub async fn promo(&self, token: &str) -> Result<crate::domain::promo::Promocode, ShopError> {
        crate::domain::promo::check_token(token)
            .map_err(|_| DomainError::NotFound { what: "promo code".into(), id: token.into() })?;
        Ok(self.promos.command(&token.to_owned(), fresh_message_id(), PromoCommand::Get).await??)
    }

    /// Every promo code (a scan of the promocode service's records).
    pub fn promos(&self) -> Result<Vec<crate::domain::promo::Promocode>, ShopError> {
        Ok(self.scan::<PromoKind>()?.into_iter().map(|a| a.code).collect())
    }

    /// Every stored aggregate of kind `K` (a scan; for listings and tools).
    pub fn scan<K: EntityKind>(&self) -> Result<Vec<K::State>, ShopError> {
        let rows = crate::persistence::StateSource::states(&self.store, K::SERVICE, K::AGGREGATE)
            .map_err(EngineError::Unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, schema, body) in rows {
            let key = K::parse_key(&k).map_err(EngineError::Unavailable)?;
            out.push(K::decode_state(&key, schema, &body).map_err(|e| EngineError::Unavailable(e.to_string()))?);
        }
        Ok(out)
    }

    /// Creates a user with an already hashed password.
    pub async fn create_user(
        &self,
        id: &CustomerId,
        password_hash: String,
        role: crate::domain::auth::Role,
    ) -> Result<crate::domain::auth::User, ShopError> {
        Ok(self.users.command(id, fresh_message_id(), UserCommand::Create { password_hash, role }).await??)
    }

    /// Enables or disables a user (a disabled user cannot log in or refresh a token).
    pub async fn set_user_enabled(
        &self,
        id: &CustomerId,
        enabled: bool,
    ) -> Result<crate::domain::auth::User, ShopError> {
        Ok(self.users.command(id, fresh_message_id(), UserCommand::SetEnabled(enabled)).await??)
    }

    /// A user.
    pub async fn user(&self, id: &CustomerId) -> Result<crate::domain::auth::User, ShopError> {
        Ok(self.users.command(id, fresh_message_id(), UserCommand::Get).await??)
    }

    /// The answer kept under an idempotency record key, if any (within its window).
    pub async fn idempotent_answer(
        &self,
        key: &str,
    ) -> Result<Option<crate::actors::idempotency::StoredAnswer>, ShopError> {
        use crate::actors::idempotency::IdempotencyCommand;
        Ok(self.idempotency.command(&key.to_owned(), fresh_message_id(), IdempotencyCommand::Get).await??)
    }

    /// Keeps an answer under an idempotency record key; returns the one kept (an earlier one
    /// wins).
    pub async fn keep_answer(
        &self,
        key: &str,
        answer: crate::actors::idempotency::StoredAnswer,
    ) -> Result<Option<crate::actors::idempotency::StoredAnswer>, ShopError> {
        use crate::actors::idempotency::IdempotencyCommand;
        Ok(self.idempotency.command(&key.to_owned(), fresh_message_id(), IdempotencyCommand::Put(answer)).await??)
    }

    /// The node's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Revokes a token until it expires.
    pub async fn revoke(&self, jti: &str, exp_ms: u64) -> Result<(), ShopError> {
        let cmd = RevocationCommand::Revoke { jti: jti.to_owned(), exp_ms };
        self.revocations.command(&revocation_group(exp_ms), fresh_message_id(), cmd).await??;
        Ok(())
    }

    /// Every revoked token not yet expired: (token id, expiry ms).
    pub fn revoked_tokens(&self, now_ms: u64) -> Result<Vec<(String, u64)>, ShopError> {
        Ok(self
            .scan::<RevocationKind>()?
            .into_iter()
            .flat_map(|r| r.tokens.into_iter())
            .filter(|(_, exp)| *exp > now_ms)
            .collect())
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
        for rec in self.sends_of(id)? {
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

    /// The notification sends about an order (found by their id's prefix).
    pub fn sends_of(&self, id: &OrderId) -> Result<Vec<SendRecord>, ShopError> {
        let trees = self
            .store
            .service(SendRecordKind::SERVICE, SendRecordKind::AGGREGATE)
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let prefix = crate::domain::notification::send_prefix(id);
        let mut out = Vec::new();
        for row in self.store.scan_aggregates_prefix(&trees, prefix.as_bytes()) {
            let (k, h, body) = row.map_err(|e| EngineError::Unavailable(e.to_string()))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            out.push(
                SendRecordKind::decode_state(&key, h.schema, &body)
                    .map_err(|e| EngineError::Unavailable(e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// The payment to make for an order: the one in progress, or a new one for what is due.
    /// Waits up to `wait` while the order's booking completes.
    pub async fn redirect(&self, order: &OrderId, wait: Duration) -> Result<Payment, ShopError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Watch the account before asking, so a booking that lands in between still wakes us.
            let mut changes = self.payments.subscribe(order).await?;
            let cmd = PaymentCommand::Open { links: self.payment_links.clone() };
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

    /// The notification service's view of a customer.
    pub async fn notification_view(&self, customer: &CustomerId) -> Result<Notifications, ShopError> {
        Ok(self.notifications.command(customer, fresh_message_id(), NotificationsQuery::Get).await?)
    }

    /// Every recorded notification send (a scan of the service's records).
    pub fn sends(&self) -> Result<Vec<SendRecord>, ShopError> {
        let rows =
            crate::persistence::StateSource::states(&self.store, SendRecordKind::SERVICE, SendRecordKind::AGGREGATE)
                .map_err(EngineError::Unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, schema, body) in rows {
            let rec =
                SendRecordKind::decode_state(&k, schema, &body).map_err(|e| EngineError::Unavailable(e.to_string()))?;
            out.push(rec);
        }
        Ok(out)
    }

    /// The invariant checker's verdict now.
    pub fn invariants(&self) -> Report {
        invariants::check(&self.store, self.clock.now_ms(), 2_000)
    }
}
