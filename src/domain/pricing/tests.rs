use proptest::prelude::*;

use super::*;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn line(id: &str, price: i64, qty: u32) -> Line {
    Line { product: Sku::parse(id).unwrap(), name: id.to_uppercase(), unit_price: eur(price), qty: Qty::new(qty) }
}

fn promo(discount: Discount) -> Promo {
    Promo {
        token: "SPRING".into(),
        rule: Rule {
            discount,
            product_ids: None,
            min_total: None,
            valid_from_ms: None,
            valid_until_ms: None,
            usage_limit: None,
        },
        used_count: 0,
    }
}

fn check(lines: Vec<Line>, p: Option<&Promo>) -> Result<(i64, i64, i64), DomainError> {
    let r = price(lines, p, 1_000, Currency::EUR)?;
    Ok((r.total.minor(), r.discount.minor(), r.fixed_price.minor()))
}

#[test]
fn totals_and_discounts_follow_the_contract() {
    assert_eq!(check(vec![line("a", 1250, 2), line("b", 999, 1)], None), Ok((3499, 0, 3499)));
    assert_eq!(check(vec![line("a", 999, 1)], Some(&promo(Discount::Percent(10)))), Ok((999, 99, 900)), "floor");
    assert_eq!(check(vec![line("a", 500, 1)], Some(&promo(Discount::Amount(800)))), Ok((500, 500, 0)), "capped");
    let mut only_b = promo(Discount::Percent(50));
    only_b.rule.product_ids = Some(vec![Sku::parse("b").unwrap()]);
    assert_eq!(check(vec![line("a", 1000, 1), line("b", 400, 2)], Some(&only_b)), Ok((1800, 400, 1400)));
}

#[test]
fn repeated_products_are_merged() {
    let r = price(vec![line("a", 100, 1), line("b", 10, 1), line("a", 100, 2)], None, 0, Currency::EUR).unwrap();
    assert_eq!(r.lines.len(), 2);
    assert_eq!(r.lines[0].qty, Qty::new(3));
    assert_eq!(r.total.minor(), 310);
}

#[test]
fn bad_orders_and_unusable_codes_are_rejected() {
    assert!(matches!(check(vec![], None), Err(DomainError::Invalid { .. })));
    assert_eq!(check(vec![line("a", 1, 0)], None), Err(DomainError::ZeroQuantity));
    assert!(matches!(check(vec![line("a", 1, ORDER_LINE_QTY_MAX + 1)], None), Err(DomainError::Invalid { .. })));
    let mut p = promo(Discount::Percent(10));
    p.rule.min_total = Some(5_000);
    assert!(matches!(check(vec![line("a", 100, 1)], Some(&p)), Err(DomainError::PromoNotApplicable { .. })));
    let mut p = promo(Discount::Percent(10));
    p.rule.valid_until_ms = Some(1_000);
    assert!(matches!(check(vec![line("a", 100, 1)], Some(&p)), Err(DomainError::PromoNotApplicable { .. })));
    let mut p = promo(Discount::Percent(10));
    p.rule.usage_limit = Some(3);
    p.used_count = 3;
    assert!(matches!(check(vec![line("a", 100, 1)], Some(&p)), Err(DomainError::PromoNotApplicable { .. })));
}

#[test]
fn rules_are_checked() {
    assert!(promo(Discount::Percent(0)).rule.check().is_err());
    assert!(promo(Discount::Percent(101)).rule.check().is_err());
    assert!(promo(Discount::Amount(0)).rule.check().is_err());
    assert!(promo(Discount::Percent(100)).rule.check().is_ok());
    let mut r = promo(Discount::Amount(5)).rule;
    r.valid_from_ms = Some(10);
    r.valid_until_ms = Some(10);
    assert!(r.check().is_err());
}

proptest! {
    #[test]
    fn the_fixed_price_is_never_negative_nor_above_the_total(
        prices in prop::collection::vec((0i64..100_000, 1u32..50), 1..10),
        pct in 1u8..=100,
        amount in 1i64..1_000_000,
        use_pct in any::<bool>(),
    ) {
        let lines: Vec<Line> = prices.iter().enumerate().map(|(i, (p, q))| line(&format!("p{i}"), *p, *q)).collect();
        let d = if use_pct { Discount::Percent(pct) } else { Discount::Amount(amount) };
        let (total, discount, fixed) = check(lines, Some(&promo(d))).unwrap();
        prop_assert!(discount >= 0 && discount <= total);
        prop_assert_eq!(fixed, total - discount);
    }
}
