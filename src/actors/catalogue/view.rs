//! The catalogue's in-memory read model for browsing: every product with its free quantity
//! (from the catalogue's stock projection) and its active promotions (from the catalogue's copy of
//! the promo codes), plus a tantivy full-text index over names and descriptions.
//!
//! It is fed by the same events as the catalogue's durable projections (`catalogue.product`,
//! `stock.item`, `promo.event`), as a node-local subscriber, and rebuilt at start from those
//! projections — the catalogue service's own trees, never another service's. Eventually
//! consistent: a booking shows in `freeQuantity` a moment after it happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, Value, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::actors::catalogue::{ProductCopyKind, ProductKind, StockProjectionKind};
use crate::actors::kind::EntityKind;
use crate::actors::promo::CataloguePromoKind;
use crate::domain::catalogue::Product;
use crate::domain::promo::Promocode;
use crate::domain::stock::StockLevels;
use crate::domain::Sku;
use crate::persistence::events::{self, Topic};
use crate::persistence::StateSource;
use crate::persistence::{DeliveryError, Envelope, Subscriber};

/// Most hits a full-text query considers.
const SEARCH_HITS_MAX: usize = 10_000;

/// A product as the catalogue shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductView {
    /// The product.
    pub product: Product,
    /// Units free to order (as last heard).
    pub free: u32,
    /// Promotions that apply to it now: (token, description).
    pub promotions: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    products: HashMap<Sku, Product>,
    stock: HashMap<Sku, (u64, StockLevels)>,
    promos: HashMap<String, (u64, Promocode)>,
}

struct Search {
    writer: IndexWriter,
    reader: IndexReader,
    parser: QueryParser,
    id: Field,
}

/// The read model.
pub struct CatalogView {
    state: RwLock<State>,
    search: Mutex<Search>,
}

fn ignore_poison<T>(r: Result<T, std::sync::PoisonError<T>>) -> T {
    r.unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CatalogView {
    /// An empty view.
    pub fn new() -> Result<CatalogView, String> {
        let mut b = Schema::builder();
        let id = b.add_text_field("id", STRING | STORED);
        let name = b.add_text_field("name", TEXT);
        let description = b.add_text_field("description", TEXT);
        let index = Index::create_in_ram(b.build());
        let writer = index.writer(20_000_000).map_err(|e| e.to_string())?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| e.to_string())?;
        let mut parser = QueryParser::for_index(&index, vec![name, description]);
        parser.set_conjunction_by_default();
        Ok(CatalogView {
            state: RwLock::new(State::default()),
            search: Mutex::new(Search { writer, reader, parser, id }),
        })
    }

    /// Rebuilds the view from the catalogue service's trees: the products this node owns and
    /// its copies of every product (the copies exist in a cluster, and in a store whose products
    /// were added after they did), its copies of the stock levels and of the promo codes.
    pub fn load(&self, src: &dyn StateSource) -> Result<(), String> {
        for (k, schema, body) in src.states(ProductKind::SERVICE, ProductKind::AGGREGATE)? {
            let key = ProductKind::parse_key(&k)?;
            let p = ProductKind::decode_state(&key, schema, &body).map_err(|e| e.to_string())?;
            if p.exists() {
                self.upsert_product(p);
            }
        }
        for (k, schema, body) in src.states(ProductCopyKind::SERVICE, ProductCopyKind::AGGREGATE)? {
            let key = ProductCopyKind::parse_key(&k)?;
            if let Some((_, p)) = ProductCopyKind::decode_state(&key, schema, &body).map_err(|e| e.to_string())? {
                if !ignore_poison(self.state.read()).products.contains_key(&p.id) {
                    self.upsert_product(p);
                }
            }
        }
        for (k, schema, body) in src.states(StockProjectionKind::SERVICE, StockProjectionKind::AGGREGATE)? {
            let key = StockProjectionKind::parse_key(&k)?;
            let s = StockProjectionKind::decode_state(&key, schema, &body).map_err(|e| e.to_string())?;
            self.set_stock(&key, s.levels, s.stock_version);
        }
        for (k, schema, body) in src.states(CataloguePromoKind::SERVICE, CataloguePromoKind::AGGREGATE)? {
            let key = CataloguePromoKind::parse_key(&k)?;
            if let Some((v, p)) = CataloguePromoKind::decode_state(&key, schema, &body).map_err(|e| e.to_string())? {
                self.set_promo(p, v);
            }
        }
        Ok(())
    }

    /// Adds or replaces a product (and its index entry).
    pub fn upsert_product(&self, p: Product) {
        {
            let mut s = ignore_poison(self.search.lock());
            let id = s.id;
            s.writer.delete_term(Term::from_field_text(id, p.id.as_str()));
            let schema = s.writer.index().schema();
            let (name, description) = match (schema.get_field("name"), schema.get_field("description")) {
                (Ok(n), Ok(d)) => (n, d),
                _ => return,
            };
            let added = s.writer.add_document(
                doc!(id => p.id.as_str(), name => p.name.as_str(), description => p.description.as_str()),
            );
            let committed = added.and_then(|_| s.writer.commit());
            if let Err(e) = committed.and_then(|_| s.reader.reload()) {
                tracing::error!(error = %e, product = %p.id, "search index update failed");
            }
        }
        ignore_poison(self.state.write()).products.insert(p.id.clone(), p);
    }

    /// New stock counts, if newer than what the view has.
    pub fn set_stock(&self, sku: &Sku, levels: StockLevels, version: u64) {
        let mut s = ignore_poison(self.state.write());
        let e = s.stock.entry(sku.clone()).or_insert((0, StockLevels::default()));
        if version > e.0 {
            *e = (version, levels);
        }
    }

    /// A promo code's newest version.
    pub fn set_promo(&self, p: Promocode, version: u64) {
        let mut s = ignore_poison(self.state.write());
        let e = s.promos.entry(p.token.clone()).or_insert((0, p.clone()));
        if version >= e.0 {
            *e = (version, p);
        }
    }

    fn view(s: &State, p: &Product, now_ms: u64) -> ProductView {
        let free = s.stock.get(&p.id).map_or(0, |(_, l)| l.free.get());
        let mut promotions: Vec<(String, String)> = s
            .promos
            .values()
            .filter(|(_, c)| c.active(now_ms) && c.rule.product_ids.as_ref().is_none_or(|ids| ids.contains(&p.id)))
            .map(|(_, c)| (c.token.clone(), c.description.clone()))
            .collect();
        promotions.sort();
        ProductView { product: p.clone(), free, promotions }
    }

    /// One product.
    pub fn product(&self, id: &Sku, now_ms: u64) -> Option<ProductView> {
        let s = ignore_poison(self.state.read());
        s.products.get(id).map(|p| Self::view(&s, p, now_ms))
    }

    /// Products matching `q` (full text over name and description; all when `None`), only
    /// those with a promotion or in stock when asked, page `page` of `size`. Returns the page
    /// and the number of matches.
    pub fn search(
        &self,
        q: Option<&str>,
        promo: bool,
        in_stock: bool,
        page: usize,
        size: usize,
        now_ms: u64,
    ) -> (Vec<ProductView>, usize) {
        let ids: Option<Vec<Sku>> = q.filter(|q| !q.trim().is_empty()).map(|q| {
            let s = ignore_poison(self.search.lock());
            let (query, _errors) = s.parser.parse_query_lenient(q);
            let searcher = s.reader.searcher();
            let hits = searcher.search(&query, &TopDocs::with_limit(SEARCH_HITS_MAX)).unwrap_or_default();
            hits.into_iter()
                .filter_map(|(_, addr)| searcher.doc::<TantivyDocument>(addr).ok())
                .filter_map(|d| d.get_first(s.id).and_then(|v| v.as_str().map(str::to_owned)))
                .filter_map(|id| Sku::parse(&id).ok())
                .collect()
        });
        let s = ignore_poison(self.state.read());
        let candidates: Vec<&Product> = match &ids {
            Some(ids) => ids.iter().filter_map(|id| s.products.get(id)).collect(),
            None => {
                let mut all: Vec<&Product> = s.products.values().collect();
                all.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                all
            }
        };
        let matching: Vec<ProductView> = candidates
            .into_iter()
            .map(|p| Self::view(&s, p, now_ms))
            .filter(|v| (!promo || !v.promotions.is_empty()) && (!in_stock || v.free > 0))
            .collect();
        let total = matching.len();
        let page_items = matching.into_iter().skip(page.saturating_mul(size)).take(size).collect();
        (page_items, total)
    }

    /// Promo codes active at `now_ms`.
    pub fn active_promos(&self, now_ms: u64) -> Vec<Promocode> {
        let s = ignore_poison(self.state.read());
        let mut v: Vec<Promocode> =
            s.promos.values().filter(|(_, p)| p.active(now_ms)).map(|(_, p)| p.clone()).collect();
        v.sort_by(|a, b| a.token.cmp(&b.token));
        v
    }
}

/// The view as a subscriber of `catalogue.product`, `stock.item` and `promo.event`.
pub struct ViewFeed(pub Arc<CatalogView>);

impl Subscriber for ViewFeed {
    fn deliver(&self, env: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let view = self.0.clone();
        Box::pin(async move {
            let bad = |e: crate::persistence::CodecError| DeliveryError::Permanent(e.to_string());
            match env.topic {
                Topic::ProductEvent => {
                    view.upsert_product(events::decode(env.topic, env.schema_version, &env.payload).map_err(bad)?)
                }
                Topic::StockItem => {
                    let e = events::decode_stock_item(env.schema_version, &env.payload).map_err(bad)?;
                    view.set_stock(&e.sku, e.levels, env.aggregate_version);
                }
                Topic::PromoEvent => view.set_promo(
                    events::decode(env.topic, env.schema_version, &env.payload).map_err(bad)?,
                    env.aggregate_version,
                ),
                t => return Err(DeliveryError::Permanent(format!("the catalogue view takes no {} events", t.name()))),
            }
            Ok(())
        })
    }
}

/// The topics the view follows.
pub const VIEW_TOPICS: [Topic; 3] = [Topic::ProductEvent, Topic::StockItem, Topic::PromoEvent];
