#!/usr/bin/env python3
"""What telegate costs on AWS per month: `python3 infra/cost.py` prints the README's table.

List prices (us-east-1, arm64, on-demand, no free tier), and the usage assumed per subscriber per
month, are the constants below: change them and run it again. Nothing here is measured on AWS.
"""

PRICE = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,  # arm64
    "http_api_request": 1.00 / 1e6,
    "dynamodb_read": 0.125 / 1e6,  # per read request unit
    "dynamodb_write": 0.625 / 1e6,  # per write request unit
    "dynamodb_gb_month": 0.25 + 0.20,  # storage + point-in-time recovery
    "sqs_request": 0.40 / 1e6,
    "ses_email": 0.10 / 1000,
    "logs_gb": 0.50 + 0.03,  # ingestion + a month of storage
    "eventbridge_event": 1.00 / 1e6,  # custom events on the bus
    "alarm_month": 0.10,
    "custom_metric_month": 0.30,
    "secret_month": 0.40,
}

# Per subscriber per month.
API_CALLS = 65  # mostly status and notifications polling by the frontend
API_SECONDS = 0.03
UPDATES = 10  # Telegram updates to the webhook
UPDATE_SECONDS = 0.4  # the webhook waits on Telegram (invite link, reply): 0.3-0.5 s
EFFECTS = 10  # queued Telegram calls and emails
EVENTS = 3  # business events (payment, membership), each a queued effect too
EFFECT_SECONDS = 0.4  # the consumer waits on Telegram or SES
EVENT_SECONDS = 0.05
SQS_REQUESTS_PER_MESSAGE = 3  # send, receive, delete
EMAILS = 5
READS_PER_INVOCATION = 3
WRITES_PER_INVOCATION = 5  # transactions count each item twice; one more for the Bot API pace item
LOG_KB_PER_INVOCATION = 2  # JSON lines: request, effects, errors
STORED_KB = 10
MEMORY_GB = 0.125
ALARMS = 22  # template.yaml
# The code's metrics written every month (webhook answers 2xx, the effects' age, a complete run per
# job, the fraud metric); the failure metrics exist only in the hours they are written.
CUSTOM_METRICS = 10
FIXED_SECRETS = 4  # the operator's secret and the stack's three copies of its keys (two with JwksUrl)


def month(subscribers):
    invocations = API_CALLS + UPDATES + EFFECTS + EVENTS
    seconds = API_CALLS * API_SECONDS + UPDATES * UPDATE_SECONDS + EFFECTS * EFFECT_SECONDS + EVENTS * EVENT_SECONDS
    n = subscribers
    return {
        "Lambda": n * (invocations * PRICE["lambda_request"] + seconds * MEMORY_GB * PRICE["lambda_gb_second"]),
        "API Gateway": n * API_CALLS * PRICE["http_api_request"],
        "DynamoDB": n * invocations * (READS_PER_INVOCATION * PRICE["dynamodb_read"] + WRITES_PER_INVOCATION * PRICE["dynamodb_write"])
        + n * STORED_KB / 1e6 * PRICE["dynamodb_gb_month"],
        "SQS": n * (EFFECTS + EVENTS) * SQS_REQUESTS_PER_MESSAGE * PRICE["sqs_request"],
        "SES": n * EMAILS * PRICE["ses_email"],
        "Logs": n * invocations * LOG_KB_PER_INVOCATION / 1e6 * PRICE["logs_gb"],
        "EventBridge": n * EVENTS * PRICE["eventbridge_event"],
        "Alarms, metric, secret": ALARMS * PRICE["alarm_month"] + CUSTOM_METRICS * PRICE["custom_metric_month"] + FIXED_SECRETS * PRICE["secret_month"],
    }


def main():
    rows = [(n, month(n)) for n in (1_000, 10_000, 100_000)]
    columns = list(rows[0][1])
    print("| subscribers | " + " | ".join(columns) + " | total / month | largest |")
    print("|---:|" + "---:|" * len(columns) + "---:|---|")
    for n, cost in rows:
        total = sum(cost.values())
        largest = max(cost, key=cost.get)
        cells = " | ".join(f"${v:,.2f}" for v in cost.values())
        print(f"| {n:,} | {cells} | **${total:,.2f}** | {largest} ({cost[largest] / total:.0%}) |")


if __name__ == "__main__":
    main()
