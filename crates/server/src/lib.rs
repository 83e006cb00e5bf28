//! The platform server: configuration, the live runtime (one engine actor per
//! account, journaled through the store), the simulated paper market, and the
//! HTTP and WebSocket API.

pub mod accounts;
pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bots;
pub mod client_ip;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod doctor;
pub mod error;
pub mod feed;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod openapi;
pub mod routes;
pub mod runtime;
pub mod serve;
pub mod telemetry;
pub mod venue_credentials;
