//! Golden byte fixtures: the encodings of every schema version, frozen in `tests/fixtures/`
//! (see `persistence::fixtures`).

use super::v1::{StockChangeV1, StockItemEventV1};
use super::*;
use crate::domain::{MessageId, NodeId};
use crate::persistence::envelope::Envelope;
use crate::persistence::fixtures::fixture;

fn levels() -> StockLevels {
    StockLevels {
        received: Qty::new(10),
        free: Qty::new(7),
        booked: Qty::new(2),
        shipped: Qty::new(1),
        returned: Qty::ZERO,
    }
}

fn sku() -> Sku {
    Sku::parse("book-978-0141439518").unwrap()
}

fn order() -> OrderId {
    OrderId::parse("o-17-0001").unwrap()
}

fn v1_released() -> Vec<u8> {
    let v1 = StockItemEventV1 {
        sku: sku(),
        change: StockChangeV1::Released { order: order(), qty: Qty::new(1) },
        levels: levels(),
    };
    codec::to_body("v1", &v1, 1024).unwrap()
}

#[test]
fn a_v1_release_is_read_as_v2_with_an_unrecorded_reason() {
    let fresh = v1_released();
    let golden = fixture("stock_item_v1_released.bin", &fresh);
    assert_eq!(golden, fresh, "schema 1 encoding changed: frozen types must not change");
    let event = decode_stock_item(1, &golden).unwrap();
    assert_eq!(
        event,
        StockItemEvent {
            sku: sku(),
            change: StockChange::Released { order: order(), qty: Qty::new(1), reason: ReleaseReason::Unrecorded },
            levels: levels(),
        }
    );
}

#[test]
fn the_current_schema_encoding_is_pinned() {
    let v2 = StockItemEvent {
        sku: sku(),
        change: StockChange::Released { order: order(), qty: Qty::new(1), reason: ReleaseReason::OrderCancelled },
        levels: levels(),
    };
    let fresh = encode_stock_item(&v2).unwrap();
    let golden = fixture("stock_item_v2_released.bin", &fresh);
    assert_eq!(golden, fresh, "schema 2 encoding changed: bump STOCK_ITEM_SCHEMA and add an upcaster");
    assert_eq!(decode_stock_item(2, &golden).unwrap(), v2);
    // The same bytes are not silently accepted as another version.
    assert!(decode_stock_item(1, &golden).is_err());
}

#[test]
fn a_stored_envelope_is_pinned() {
    let env = Envelope {
        message_id: MessageId::from_bytes(*b"0123456789abcdef"),
        topic: Topic::StockItem,
        routing_key: sku().to_string(),
        aggregate_id: sku().to_string(),
        aggregate_version: 7,
        aggregate_status: "IN_STOCK".into(),
        origin_node: NodeId::parse("node-a").unwrap(),
        schema_version: 1,
        timestamp_ms: 1_764_000_000_000,
        causation_id: None,
        request_id: Some("req-1".into()),
        payload: v1_released(),
    };
    let fresh = env.encode().unwrap();
    let golden = fixture("envelope_v1_stock_item.bin", &fresh);
    assert_eq!(golden, fresh);
    let back = Envelope::decode(&golden).unwrap();
    assert_eq!(back, env);
    let event = decode_stock_item(back.schema_version, &back.payload).unwrap();
    assert!(matches!(event.change, StockChange::Released { reason: ReleaseReason::Unrecorded, .. }));
}

#[test]
fn unknown_schema_versions_and_topics_are_typed_errors() {
    let body = encode_stock_item(&StockItemEvent {
        sku: sku(),
        change: StockChange::Received { qty: Qty::new(1), dims: None },
        levels: levels(),
    })
    .unwrap();
    assert!(matches!(decode_stock_item(3, &body), Err(CodecError::UnknownSchema { version: 3, .. })));
    assert!(matches!(decode_stock_item(0, &body), Err(CodecError::UnknownSchema { version: 0, .. })));
    assert_eq!(Topic::parse("stock.item"), Some(Topic::StockItem));
    assert_eq!(Topic::parse("stock.items"), None);
}

fn order_line() -> crate::domain::saga::OrderLine {
    crate::domain::saga::OrderLine {
        id: sku(),
        name: "Jane Eyre".into(),
        quantity: Qty::new(2),
        price: crate::domain::Money::new(1250, crate::domain::Currency::EUR),
        dims: None,
    }
}

#[test]
fn a_v1_order_event_is_read_as_v2_without_a_discount() {
    use crate::domain::saga::{CancelReason, OrderStatus};
    use crate::domain::{Currency, CustomerId, Money};
    let v1 = order_v1::OrderEventV1 {
        order_id: order(),
        customer_id: CustomerId::parse("jane@example.com").unwrap(),
        status: OrderStatus::Cancelled,
        items: vec![order_line()],
        fixed_price: Money::new(2500, Currency::EUR),
        cancel_reason: Some(CancelReason::Timeout),
    };
    let fresh = codec::to_body("v1", &v1, 4096).unwrap();
    let golden = fixture("order_event_v1_cancelled.bin", &fresh);
    assert_eq!(golden, fresh, "schema 1 encoding changed: frozen types must not change");
    let e = decode_order_event(1, &golden).unwrap();
    assert_eq!(e.discount, Money::zero(Currency::EUR));
    assert_eq!(e.promo_code, None);
    assert_eq!(e.cancel_reason, Some(CancelReason::Timeout));
    assert_eq!(e.items, vec![order_line()]);
    // The current encoding is pinned too, and is not readable as schema 1.
    let v2 = crate::domain::saga::OrderEvent {
        discount: Money::new(250, Currency::EUR),
        promo_code: Some("SPRING".into()),
        ..e
    };
    let fresh = encode(&v2).unwrap();
    let golden = fixture("order_event_v2_cancelled.bin", &fresh);
    assert_eq!(golden, fresh);
    assert_eq!(decode_order_event(2, &golden).unwrap(), v2);
    assert!(decode_order_event(3, &golden).is_err());
}

#[test]
fn every_topic_round_trips_its_name() {
    for t in Topic::ALL {
        assert_eq!(Topic::parse(t.name()), Some(*t));
    }
}

#[test]
fn a_v1_promo_use_is_read_as_taken_without_a_hold() {
    use crate::domain::promo::PromoUse;
    let fresh = codec::to_body("v1", &order(), 1024).unwrap();
    let golden = fixture("promo_used_v1.bin", &fresh);
    assert_eq!(golden, fresh, "schema 1 encoding changed: frozen types must not change");
    assert_eq!(decode_promo_use(1, &golden).unwrap(), PromoUse::Taken { order: order(), cause: None });
    let v2 = PromoUse::Released { order: order() };
    let fresh = encode(&v2).unwrap();
    let golden = fixture("promo_used_v2_released.bin", &fresh);
    assert_eq!(golden, fresh, "schema 2 encoding changed: bump PROMO_USED_SCHEMA and add an upcaster");
    assert_eq!(decode_promo_use(2, &golden).unwrap(), v2);
    assert!(decode_promo_use(3, &golden).is_err());
}
