"""RADIUS for voice gateways, in the Cisco VSA prepaid convention (docs/design.md section 4).

- ``model``: the pure rules: h323-return-code values, call ids made from h323-conf-id or
  Acct-Session-Id and back, Cisco VSA values.
- ``attributes``: the dictionary shipped with the package (``dictionary``) and typed reads of packets.
- ``service``: one Access-Request or Accounting-Request applied to credit control, as a switch.
- ``server``: the UDP server (pyrad), started by ``tollway radius``.

Disconnects go the other way, through credit control's notifier (``tollway.calls.notify``, kind
``radius``), which uses ``model`` and ``attributes`` only. Nothing is imported here, so that importing
those two never imports the server and credit control with it.
"""
