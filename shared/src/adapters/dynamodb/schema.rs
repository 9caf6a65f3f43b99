//! The table as infra/TABLES.md describes it and template.yaml declares it (tests and local
//! stand-ins create it with this; AWS uses the template).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{DynamoStore, GSI, fault};
use crate::ports::StoreError;

impl DynamoStore {
    /// Creates the table as template.yaml declares it (tests and local stand-ins; AWS uses the template).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(fault)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(fault)
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?);
        for gsi in GSI {
            request = request
                .attribute_definitions(attr(&format!("{gsi}pk"))?)
                .attribute_definitions(attr(&format!("{gsi}sk"))?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(gsi)
                        .key_schema(key(&format!("{gsi}pk"), KeyType::Hash)?)
                        .key_schema(key(&format!("{gsi}sk"), KeyType::Range)?)
                        .projection(Projection::builder().projection_type(ProjectionType::All).build())
                        .build()
                        .map_err(fault)?,
                );
        }
        request.send().await.map_err(fault)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name("ttl").enabled(true).build().map_err(fault)?,
            )
            .send()
            .await
            .map_err(fault)?;
        Ok(())
    }

    /// `true` when the table exists (for `doctor`).
    pub async fn table_exists(&self) -> Result<bool, StoreError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }
}
