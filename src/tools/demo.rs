//! The demo catalogue `bazaar serve --demo` seeds: real-looking books with stock, promo codes,
//! and one user per role. Seeding twice changes nothing (existing records are left alone, stock
//! is received under fixed message ids).

use crate::app::shop::{Shop, ShopError};
use crate::domain::auth::Role;
use crate::domain::customer::{Channel, Communication};
use crate::domain::pricing::{Discount, Rule};
use crate::domain::stock::{Dimensions, StockCommand};
use crate::domain::{Currency, CustomerId, DomainError, MessageId, Money, Qty, Sku};

/// A demo user's credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// E-mail.
    pub email: &'static str,
    /// Password.
    pub password: &'static str,
    /// Role.
    pub role: Role,
}

/// The demo users (documented in the README; demo data only).
pub const USERS: [Credentials; 5] = [
    Credentials { email: "admin@bazaar.test", password: "admin-demo-pass", role: Role::Admin },
    Credentials { email: "operator@bazaar.test", password: "operator-demo-pass", role: Role::Operator },
    Credentials { email: "stock@bazaar.test", password: "stock-demo-pass", role: Role::StockOperator },
    Credentials { email: "shipping@bazaar.test", password: "shipping-demo-pass", role: Role::ShippingOperator },
    Credentials { email: "reader@bazaar.test", password: "reader-demo-pass", role: Role::Customer },
];

/// The demo catalogue: (id, title, description, price in cents, stock). Data rows, alike in shape.
const BOOKS: [(&str, &str, &str, i64, u32); 10] = [
    (
        "book-jane-eyre",
        "Jane Eyre",
        "Charlotte Brontë's novel of an orphaned governess and the master of Thornfield Hall.",
        1250,
        12,
    ),
    ("book-war-and-peace", "War and Peace", "Tolstoy's epic of Russian society during the Napoleonic wars.", 1990, 7),
    ("book-moby-dick", "Moby-Dick", "Herman Melville's tale of Captain Ahab's hunt for the white whale.", 1450, 5),
    (
        "book-pride-prejudice",
        "Pride and Prejudice",
        "Jane Austen's comedy of manners, marriage and first impressions.",
        999,
        25,
    ),
    (
        "book-don-quixote",
        "Don Quixote",
        "Cervantes' knight errant and his squire tilting at windmills across La Mancha.",
        1750,
        4,
    ),
    ("book-the-odyssey", "The Odyssey", "Homer's epic of Odysseus' ten-year voyage home from Troy.", 1100, 9),
    (
        "book-crime-punishment",
        "Crime and Punishment",
        "Dostoevsky's novel of a murder in St Petersburg and its aftermath.",
        1350,
        3,
    ),
    ("book-middlemarch", "Middlemarch", "George Eliot's study of provincial life and thwarted idealism.", 1600, 6),
    ("book-great-expectations", "Great Expectations", "Dickens' coming-of-age story of the orphan Pip.", 1050, 0),
    (
        "book-frankenstein",
        "Frankenstein",
        "Mary Shelley's tale of a scientist and the creature he brings to life.",
        899,
        15,
    ),
];

fn ignore_exists<T>(r: Result<T, ShopError>) -> Result<(), ShopError> {
    match r {
        Ok(_) | Err(ShopError::Domain(DomainError::AlreadyExists { .. })) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Seeds the demo catalogue, stock, promo codes and users. `hash` hashes a password.
pub async fn seed(shop: &Shop, hash: impl Fn(&str) -> Result<String, String>) -> Result<(), String> {
    let err = |e: ShopError| e.to_string();
    for (id, name, description, price, qty) in BOOKS {
        let sku = Sku::parse(id).map_err(|e| e.to_string())?;
        ignore_exists(shop.add_product(&sku, name, description, Money::new(price, Currency::EUR), None).await)
            .map_err(err)?;
        if qty > 0 {
            let dims = Dimensions { weight_g: 450, length_mm: 198, width_mm: 129, height_mm: 32 };
            let cmd = StockCommand::Receive { qty: Qty::new(qty), dims: Some(dims) };
            let mid = MessageId::derived(&[b"demo-stock", id.as_bytes()]);
            shop.items_service()
                .command(&sku, mid, cmd)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
    }
    let welcome = Rule {
        discount: Discount::Percent(10),
        product_ids: None,
        min_total: None,
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: None,
    };
    ignore_exists(shop.create_promo("WELCOME10", "10% off your order", welcome).await).map_err(err)?;
    let classics = Rule {
        discount: Discount::Amount(500),
        product_ids: Some(vec![
            Sku::parse("book-war-and-peace").map_err(|e| e.to_string())?,
            Sku::parse("book-don-quixote").map_err(|e| e.to_string())?,
        ]),
        min_total: Some(2000),
        valid_from_ms: None,
        valid_until_ms: None,
        usage_limit: Some(100),
    };
    ignore_exists(
        shop.create_promo("CLASSICS5", "5.00 off War and Peace or Don Quixote, orders from 20.00", classics).await,
    )
    .map_err(err)?;
    for u in USERS {
        let id = CustomerId::parse(u.email).map_err(|e| e.to_string())?;
        if shop.user(&id).await.is_err() {
            ignore_exists(shop.create_user(&id, hash(u.password)?, u.role).await).map_err(err)?;
        }
        if u.role == Role::Customer {
            let comms = vec![Communication { channel: Channel::Email, address: u.email.into() }];
            ignore_exists(shop.register_customer(&id, "Demo", "Reader", comms).await).map_err(err)?;
        }
    }
    Ok(())
}
