"""OAuth 2.0 Device Authorization Grant — RFC 8628,
https://www.rfc-editor.org/rfc/rfc8628

``DeviceAuthorizationEndpoint`` answers the device's request (§3.1–3.2);
``DeviceCodeGrant`` is the token endpoint's handler for
``urn:ietf:params:oauth:grant-type:device_code`` (§3.4–3.5). The user's side (§3.3, the
verification page) is the identity service's ``/device`` page."""

from tessera.protocol.rfc8628.authorization import DeviceAuthorizationEndpoint
from tessera.protocol.rfc8628.grant import DeviceCodeGrant

__all__ = ["DeviceAuthorizationEndpoint", "DeviceCodeGrant"]
