"""The application layer: the identity service's use cases that no RFC defines.

Revoking at each grain with its outbox event (``lifecycle``), the unit of work that carries
audit records and outbox events (``transaction``), good standing of users, clients and
tenants (``standing``), CAEP signal events (``signal_events``) and the administrative
operations shared by the CLI, the admin API, the console and the account pages
(``admin``, ``accounts``, ``client_admin``, ``tenancy``, ``client_keys``).

Whether an issued access token is still active (``protocol.token_state``) stays with the
protocol: it is RFC 9068 validation, RFC 9449/8705 binding and revocation, the one
validator the SDK shares.

These modules depend on ``core`` and on ports (``store.ports``, ``application.ports``)
only; the protocol endpoints (``protocol/``) and the composition roots (``identity``,
``console``, ``cli``) call them. See docs/architecture.md, "Layers and the dependency rule".
"""
