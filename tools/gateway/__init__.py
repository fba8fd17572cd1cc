"""The local gateway: Supabase's URLs on one port, for development and tests only."""

from tools.gateway.app import Gateway, GatewayConfig, GatewayError, GatewayModule, create_app

__all__ = ["Gateway", "GatewayConfig", "GatewayError", "GatewayModule", "create_app"]
