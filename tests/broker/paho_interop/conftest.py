# Upstream's file name matches pytest's `*_test.py`; it runs through test_paho_interop.py.
collect_ignore = ["client_test.py"]
