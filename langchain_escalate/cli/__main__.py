"""``python -m langchain_escalate.cli``."""

import sys

from langchain_escalate.cli import main

sys.exit(main())
