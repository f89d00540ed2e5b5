"""What talks to the outside world: ``sources`` (bleak, BlueZ watch, replay), the SQLite
``outbox``, the MQTT ``publisher`` (with ``tls`` and ``secrets``), the ``consent`` list file,
``health`` (the counters), ``control`` (local socket, server and client), ``privacy`` (erasure
and consent changes), ``notify`` (systemd), and ``agent``, which wires them to the pure
pipeline."""
