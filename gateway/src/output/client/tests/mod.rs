mod broker_lite;
mod fake_server;
mod mosquitto;
mod support;
mod tls;
