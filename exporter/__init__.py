"""openstack-usage-exporter: rebuild OpenStack (Nova + Blazar) usage history and export it to Prometheus."""

__version__ = "0.1.0"
