//! Optional access log (json or apache), as the config says. OWNER: admin/metrics helper.
