import os
import sys

# Test helper modules (independent reference implementations) live beside the tests.
sys.path.insert(0, os.path.dirname(__file__))
