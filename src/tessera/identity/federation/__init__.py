"""Federation: upstream OpenID Connect providers per tenant (docs/federation.md).

``mapping`` (the claim schema), ``upstream`` (the relying party: Authlib + tessera.jose),
``service`` (logins, links, provisioning, inbound logout and security events),
``endpoints`` (HTTP), ``admin`` (``tessera idps``)."""

__all__: list[str] = []
