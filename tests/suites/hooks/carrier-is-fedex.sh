#!/bin/sh
# assert_body hook: the service must pass on the carrier the mock hook chose.
if grep -q '"carrier":"fedex"'; then
  echo '{"pass": true}'
else
  echo '{"pass": false, "message": "the answer does not name fedex"}'
fi
