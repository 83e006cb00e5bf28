//! OpenAPI schemas for the types with hand-written serde (the `openapi`
//! feature). The derived ones sit on the types themselves.
//!
//! Numbers are exact decimals and travel as JSON strings (`"101.25"`), so
//! their schemas say `type: string` with the pattern the parser accepts;
//! times are RFC 3339 strings in UTC.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::{ClientOrderId, Currency, Money, Price, Quantity, Rate, Timestamp};

/// What [`crate::num::parse_fixed_i128`] accepts: an optional sign, digits
/// and at most one `.`; no exponent. Answers always have the form
/// `-?\d+(\.\d{1,9})?`.
pub const DECIMAL_PATTERN: &str = r"^[+-]?(\d+\.?\d*|\.\d+)$";

fn decimal(description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(DECIMAL_PATTERN))
        .description(Some(format!(
            "{description} An exact decimal as a string, at most 9 decimal places (further digits must be 0)."
        )))
        .examples([example])
        .into()
}

macro_rules! schema {
    ($ty:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}

schema!(Price, decimal("A price.", "101.25"));
schema!(Quantity, decimal("A quantity of units or contracts; negative for a short position.", "0.5"));
schema!(Money, decimal("An amount of money.", "100000"));
schema!(Rate, decimal("A fraction (0.002 = 0.2 %).", "0.002"));
schema!(
    Timestamp,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("RFC 3339 time in UTC; fractional seconds up to nanoseconds."))
        .examples(["2024-01-31T09:30:00.25Z"])
        .into()
);
schema!(
    Currency,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Z0-9]{1,12}$"))
        .description(Some("A currency or asset code."))
        .examples(["USDT"])
        .into()
);
schema!(
    ClientOrderId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._:-]{1,36}$"))
        .description(Some("The client's id for an order: resubmitting the same id is answered with the same order."))
        .examples(["my-order-1"])
        .into()
);

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn numbers_are_decimal_strings_whose_examples_parse() {
        let price = serde_json::to_value(Price::schema()).unwrap();
        assert_eq!((price["type"].as_str(), price["pattern"].as_str()), (Some("string"), Some(DECIMAL_PATTERN)));
        let example = |v: &serde_json::Value| v["examples"][0].as_str().unwrap().to_string();
        assert!(Price::parse(&example(&price)).is_ok());
        assert!(Quantity::parse(&example(&serde_json::to_value(Quantity::schema()).unwrap())).is_ok());
        assert!(Money::parse(&example(&serde_json::to_value(Money::schema()).unwrap())).is_ok());
        let time = serde_json::to_value(Timestamp::schema()).unwrap();
        assert_eq!(time["format"], "date-time");
        assert!(Timestamp::parse(&example(&time)).is_ok());
        assert!(ClientOrderId::parse(&example(&serde_json::to_value(ClientOrderId::schema()).unwrap())).is_ok());
    }
}
