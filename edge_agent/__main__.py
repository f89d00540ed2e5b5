"""``python -m edge_agent``."""

from edge_agent.cli import main

raise SystemExit(main())
