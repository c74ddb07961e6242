//! The store's operations as callers use them (the HTTP front, the tests, the benches): each
//! is a request to one service's entity, routed by key. Only request-level work happens here —
//! pricing an order from the order service's own price list, waiting briefly for an order to
//! become payable, checking a payment callback's signature. The saga itself is choreographed by
//! the services' events, never driven from here.

use std::sync::Arc;
use std::time::Duration;

use crate::actors::auth::{
    revocation_group, CopyQuery, RevocationCommand, RevocationKind, UserCommand, UserCopyKind, UserKind,
};
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

mod local;
mod orders;

pub use local::{NodeStatus, ThisNode};
pub use orders::OrderSummary;

/// How long after the fact the online invariant checker forgives an event still in flight, ms.
const INVARIANTS_GRACE_MS: u64 = 2_000;

/// A new customer's profile, as signing up gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUp {
    /// First name.
    pub name: String,
    /// Last name.
    pub last_name: String,
    /// How to reach them.
    pub communications: Vec<Communication>,
}

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
    /// This node's store could not be read (a scan).
    #[error(transparent)]
    Store(#[from] crate::persistence::StoreError),
    /// A stored record this node holds does not decode (a scan).
    #[error(transparent)]
    Record(#[from] crate::persistence::CodecError),
    /// A read of the whole cluster that some nodes did not answer: refused rather than answered
    /// partially.
    #[error("these nodes did not answer, so there is no whole answer: {0}")]
    NotAnswered(String),
    /// The answer needs every partition and this node owns only some (a cluster read that is
    /// not fanned out): refused rather than answered partially.
    #[error("this read needs every partition and this node owns {owned} of {partitions}")]
    Partial {
        /// Partitions this node owns.
        owned: usize,
        /// Partitions of the cluster.
        partitions: u32,
    },
}

/// One step of an order's timeline, as shoppers and operators read it: the stored entries (whose
/// event is a code and id a message id) and the notification sends merged, in words. The HTTP
/// shape (`TimelineOut`, times in RFC 3339) repeats its fields on purpose: one type per layer.
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
    user_copies: Service<UserCopyKind>,
    promos: Service<PromoKind>,
    order_promos: Service<OrderPromoKind>,
    idempotency: Service<crate::actors::idempotency::IdempotencyKind>,
    payment_system: Arc<dyn PaymentSystem>,
    sandbox: Option<Arc<Sandbox>>,
    callback_secret: Arc<[u8]>,
    deadlines: Deadlines,
    store: Store,
    clock: Arc<dyn Clock>,
    router: Arc<crate::cluster::Router>,
    /// The cluster transport (reads that gather from other nodes); none on a single node.
    transport: Option<Arc<crate::cluster::transport::Transport>>,
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
            user_copies: need(node)?,
            promos: need(node)?,
            order_promos: need(node)?,
            idempotency: need(node)?,
            payment_system,
            sandbox,
            callback_secret: o.payment_secret.clone().into(),
            deadlines: o.deadlines,
            store: node.store().clone(),
            clock: o.clock.clone(),
            router: node.router().clone(),
            transport: node.transport().cloned(),
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

    /// Registers a customer record, without a user (tools and tests; a shopper signs up with
    /// [`Shop::sign_up`]).
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

    /// Checks a sign-up before anything is hashed or written: the profile as registration will
    /// judge it, and the e-mail not taken (`AlreadyExists` for a user).
    pub async fn check_sign_up(&self, id: &CustomerId, profile: &SignUp) -> Result<(), ShopError> {
        let ctx =
            crate::domain::Ctx { now_ms: self.now_ms(), node: self.router.local().clone(), cause: fresh_message_id() };
        Customer::unregistered(id.clone()).register(
            &profile.name,
            &profile.last_name,
            profile.communications.clone(),
            &ctx,
        )?;
        match self.user(id).await {
            Ok(_) => Err(DomainError::AlreadyExists { what: "user".into(), id: id.to_string() }.into()),
            Err(ShopError::Domain(DomainError::NotFound { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signs a customer up as one operation: their user (with the password's hash) and their
    /// customer record. If the registration fails, the user this sign-up created is taken back
    /// (only that one: the undo names its salted hash), so a failed sign-up leaves nothing and
    /// may simply be tried again. A customer record that exists without a user (a tool's) is
    /// taken as theirs.
    pub async fn sign_up(
        &self,
        id: &CustomerId,
        password_hash: String,
        profile: SignUp,
    ) -> Result<Customer, ShopError> {
        self.create_user(id, password_hash.clone(), crate::domain::auth::Role::Customer).await?;
        let SignUp { name, last_name, communications } = profile;
        let registered = match self.register_customer(id, &name, &last_name, communications).await {
            Err(ShopError::Domain(DomainError::AlreadyExists { .. })) => self.customer(id).await,
            other => other,
        };
        if let Err(e) = &registered {
            let undo = MessageId::derived(&[b"sign-up-withdraw", id.as_str().as_bytes(), password_hash.as_bytes()]);
            match self.users.command(id, undo, UserCommand::Withdraw { password_hash }).await {
                Ok(Ok(_)) => tracing::warn!(customer = %id, error = %e, "sign-up failed; its user was taken back"),
                other => {
                    tracing::error!(customer = %id, error = %e, undo = ?other, "sign-up failed and its user could not be taken back")
                }
            }
        }
        registered
    }

    /// Changes a customer's profile.
    pub async fn update_customer(&self, id: &CustomerId, change: ProfileChange) -> Result<Customer, ShopError> {
        Ok(self.customers.command(id, fresh_message_id(), CustomerCommand::Update(change)).await??)
    }

    /// A customer.
    pub async fn customer(&self, id: &CustomerId) -> Result<Customer, ShopError> {
        Ok(self.customers.command(id, fresh_message_id(), CustomerCommand::Get).await??)
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

    /// A user: the account itself on the node that owns it; elsewhere this node's copy when it
    /// has one (every node keeps a copy of every account: a change reaches it a moment later),
    /// else the owner (an account created a moment ago).
    pub async fn user(&self, id: &CustomerId) -> Result<crate::domain::auth::User, ShopError> {
        if !self.owns(id.as_str()) {
            if let Some(u) = self.user_copies.command(id, fresh_message_id(), CopyQuery::Get).await? {
                if u.exists() {
                    return Ok(u);
                }
            }
        }
        Ok(self.users.command(id, fresh_message_id(), UserCommand::Get).await??)
    }

    /// Whether this node owns `key`'s partition.
    fn owns(&self, key: &str) -> bool {
        matches!(self.router.route(key.as_bytes()), crate::cluster::Route::Local { .. })
    }

    /// Says an account this node's store holds (one created offline) to the cluster: the
    /// account announces itself to every node's copy where this node owns it; the owner
    /// creates it from this record where another node does (already there: done).
    pub async fn announce_user(&self, id: &CustomerId) -> Result<(), ShopError> {
        if self.owns(id.as_str()) {
            self.users.command(id, fresh_message_id(), UserCommand::Announce).await??;
            return Ok(());
        }
        let trees = self.store.service(UserKind::SERVICE, UserKind::AGGREGATE)?;
        let Some((header, body)) = self.store.load_aggregate(&trees, id.as_str().as_bytes())? else {
            return Err(DomainError::NotFound { what: "user".into(), id: id.to_string() }.into());
        };
        let u = UserKind::decode_state(id, header.schema, &body)?;
        let create = UserCommand::Create { password_hash: u.password_hash, role: u.role };
        // The same record gives the same message id: a retry is applied once by the owner.
        let mid = MessageId::derived(&[b"announce", id.as_str().as_bytes()]);
        match self.users.command(id, mid, create).await? {
            Ok(_) | Err(DomainError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
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

    /// The notification service's view of a customer.
    pub async fn notification_view(&self, customer: &CustomerId) -> Result<Notifications, ShopError> {
        Ok(self.notifications.command(customer, fresh_message_id(), NotificationsQuery::Get).await?)
    }
}
