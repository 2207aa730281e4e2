//! Black-box tests of one gateway node: the real binary and real SMSC simulator
//! processes over TCP on 127.0.0.1.
#[path = "../common/mod.rs"]
mod common;

mod t10_send_basic;
mod t20_kill9_durability;
mod t22_store_damage;
mod t24_hold_channels;
mod t26_moved_cluster_addr;
mod t30_errors;
mod t31_queue_admission;
mod t32_input_edges;
mod t34_callback_urls;
mod t36_ids_and_cursors;
mod t38_security_hardening;
mod t40_batch_list_preview;
mod t43_tenant_fairness;
mod t45_encoding;
mod t47_cancel;
mod t50_receipts;
mod t55_routing;
mod t57_admin_integrity;
mod t60_throttling_reconnect;
mod t62_smpp_channel;
mod t65_compliance;
mod t66_inbound;
mod t70_actor_crash;
mod t80_webhooks_metrics;
mod t82_monitoring_series;
mod t90_sigterm_drain;
mod t92_running_one_node;
mod t95_chinese_protocols;
mod t96_http_channel;
mod t99_dashboard;
