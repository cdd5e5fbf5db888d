"""`python -m lab3 [lab|test]`: set up this machine, then run the lab on the tiny preset or the tests."""

import sys

from lab3.setup import main

sys.exit(main())
