"""Fleet simulators (`credbroker simulate`); arrive with the SDK and simulators issue."""
