#!/bin/sh
# mock_response hook: answers every shipping quote with the same price from another carrier.
cat >/dev/null
echo '{"response": {"status": 200, "headers": {"content-type": "application/json"}, "body": {"quote": 499, "carrier": "fedex"}}}'
