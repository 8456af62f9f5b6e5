"""template.yaml beyond the backtest fan-out: API, webhook, queues, schedules, table, layer
closures - the project's rules that `sam validate`, cfn-lint and asl-validator cannot see."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import metadata
from typing import Any

import pytest
import sam_template as sam
from packaging.requirements import Requirement

from algotrendy.config import Settings
from algotrendy.signals.ingest_group import IngestGroup

TEMPLATE = sam.load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sam.functions(TEMPLATE)
ZIP_FUNCTIONS = sorted(n for n, f in FUNCTIONS.items() if not f.is_image)
RESOLVER = sam._invoke_module().Resolver(TEMPLATE, region=sam.REGION)
QUEUES = sam.resources_of_type(TEMPLATE, "AWS::SQS::Queue")
ALARMS = sam.resources_of_type(TEMPLATE, "AWS::CloudWatch::Alarm")


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = RESOURCES[name]["Properties"]
    return props


def _events(name: str, kind: str) -> dict[str, dict[str, Any]]:
    events = _props(name).get("Events", {})
    return {k: v["Properties"] for k, v in events.items() if v["Type"] == kind}


# ------------------------------------------------------------------ functions


def test_every_brief_function_exists() -> None:
    assert set(FUNCTIONS) >= {
        "ApiFunction",
        "WebhookFunction",
        "SignalEvaluatorFunction",
        "CryptoIngestFunction",
        "EquitiesIngestFunction",
        "NewsIngestFunction",
        "BacktestWorkerFunction",
    }


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_zip_function_handler_file_exists(name: str) -> None:
    spec = FUNCTIONS[name]
    assert spec.handler == "app.handler"
    assert spec.handler_file.is_file(), f"{name}: {spec.handler_file} missing"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_environment_variables_are_settings_fields(name: str) -> None:
    """An ALGOTRENDY_* variable that is not a Settings field is silently ignored
    (extra="ignore"): a misspelt name would leave the function unconfigured."""
    from algotrendy.data.channels import alphavantage

    fields = {f"ALGOTRENDY_{f.upper()}" for f in Settings.model_fields}
    # Read by the alphavantage channel itself (its module's names, so a typo still fails).
    fields |= {alphavantage.API_KEY_ENV, alphavantage.STATE_DIR_ENV}
    env = sam.function_environment(TEMPLATE, name)
    ours = {v for v in env if v.startswith("ALGOTRENDY_")}
    assert ours, f"{name} gets no ALGOTRENDY_ setting"
    assert ours <= fields, f"{name}: not Settings fields: {sorted(ours - fields)}"


def test_secrets_come_from_dynamic_references_not_parameters() -> None:
    """Secret values never sit in template parameters (they would show in the stack's
    parameters and change sets): they resolve from Secrets Manager at deploy time."""
    secret_vars = ("ALGOTRENDY_DATABASE_URL", "ALGOTRENDY_JWT_SECRET", "ALGOTRENDY_REDIS_URL")
    secret_vars += ("ALGOTRENDY_QUESTDB_URL",)
    seen = 0
    for name in FUNCTIONS:
        env = sam.function_environment(TEMPLATE, name)
        for var in secret_vars:
            if var in env:
                seen += 1
                assert re.fullmatch(
                    r"\{\{resolve:secretsmanager:[^:]+:SecretString:\w+\}\}", env[var]
                )
    assert seen >= 4


# ------------------------------------------------------------------ API and webhook


def _method_settings() -> list[dict[str, Any]]:
    settings: list[dict[str, Any]] = _props("Api")["MethodSettings"]
    return settings


def _encoded(path: str) -> str:
    """A stage method setting's ResourcePath: every "/" of the path as "~1", after a "/"
    (CloudFormation, AWS::ApiGateway::Stage MethodSetting: /resource/subresource is
    /~1resource~1subresource; the root is /)."""
    return "/" if path == "/" else "/" + path.replace("/", "~1")


def test_webhook_route_exists_with_a_tighter_throttle() -> None:
    (route,) = _events("WebhookFunction", "Api").values()
    assert route == {
        "RestApiId": {"Ref": "Api"},
        "Path": "/webhooks/tradingview/{webhook_id}",
        "Method": "POST",
    }
    encoded = _encoded(route["Path"])
    by_path = {(m["ResourcePath"], m["HttpMethod"]): m for m in _method_settings()}
    assert ("/*", "*") in by_path, "no default throttle for the whole stage"
    webhook = by_path[(encoded, "POST")]
    default = by_path[("/*", "*")]
    params = sam.parameter_defaults(TEMPLATE)
    for key in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
        assert int(params[webhook[key]["Ref"]]) < int(params[default[key]["Ref"]])


def test_every_method_setting_names_a_route_of_the_api() -> None:
    routes = {"/*"}
    for name in FUNCTIONS:
        for ev in _events(name, "Api").values():
            routes.add(_encoded(ev["Path"]))
    for setting in _method_settings():
        assert setting["ResourcePath"] in routes, setting["ResourcePath"]


def test_api_function_takes_every_path_and_the_root() -> None:
    routes = {(e["Path"], e["Method"]) for e in _events("ApiFunction", "Api").values()}
    assert routes == {("/", "ANY"), ("/{proxy+}", "ANY")}
    assert int(_props("ApiFunction")["Timeout"]) <= 29, "API Gateway gives up after 29 s"


def test_api_stage_logs_access_and_traces() -> None:
    api = _props("Api")
    assert api["StageName"] == {"Ref": "Stage"}
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    json.loads(api["AccessLogSetting"]["Format"])  # one JSON object per request
    assert api["TracingEnabled"] is True
    assert RESOURCES["Api"]["DependsOn"] == "ApiGatewayAccount"


def test_webhook_is_small_and_fast() -> None:
    props = FUNCTIONS["WebhookFunction"].props
    assert int(props["Timeout"]) <= 5, "TradingView waits about 3 s"
    assert FUNCTIONS["WebhookFunction"].layers == ["CoreLayer", "BaseLayer"]
    env = sam.function_environment(TEMPLATE, "WebhookFunction")
    assert env["ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER"].startswith("/")
    assert env["ALGOTRENDY_ORDERS_QUEUE_URL"].endswith(".fifo")


def _statements(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in _props(name).get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            out += policy["Statement"]
    return out


@pytest.mark.parametrize(
    ("function", "parameter"),
    [
        ("WebhookFunction", "WebhookConfigParameterName"),
        ("SignalEvaluatorFunction", "StrategyConfigParameterName"),
    ],
)
def test_ssm_parameter_readers_may_read_and_decrypt_only_their_parameter(
    function: str, parameter: str
) -> None:
    reads = [
        p["SSMParameterReadPolicy"]["ParameterName"]
        for p in _props(function)["Policies"]
        if isinstance(p, dict) and "SSMParameterReadPolicy" in p
    ]
    assert reads == [{"Ref": parameter}]
    (kms,) = [s for s in _statements(function) if s["Action"] == "kms:Decrypt"]
    cond = kms["Condition"]["StringEquals"]
    arn = RESOLVER.value(cond["kms:EncryptionContext:PARAMETER_ARN"])
    name = sam.parameter_defaults(TEMPLATE)[parameter]
    assert arn == f"arn:aws:ssm:{sam.REGION}:{sam.ACCOUNT_ID}:parameter/{name}"
    assert RESOLVER.value(cond["kms:ViaService"]) == f"ssm.{sam.REGION}.amazonaws.com"


def test_webhook_may_only_get_put_update_delete_idempotency_records() -> None:
    (ddb,) = [s for s in _statements("WebhookFunction") if "dynamodb:PutItem" in s["Action"]]
    assert sorted(ddb["Action"]) == sorted(
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
    )
    assert ddb["Resource"] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}


# ------------------------------------------------------------------ schedules

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\((\S+ \S+ \S+ \S+ \S+ \S+)\)")


def parse_schedule(expression: str) -> float | None:
    """Seconds between runs of an EventBridge rate() expression (None for cron()); raises
    ValueError for anything EventBridge would refuse (EventBridge user guide, "Schedule
    expressions for rules": a value of 1 takes the singular unit, larger ones the plural;
    cron has six fields, one of day-of-month/day-of-week must be '?')."""
    if m := _RATE.fullmatch(expression):
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"{expression}: use '1 {unit.rstrip('s')}' or 'N {unit.rstrip('s')}s'")
        return value * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
    if m := _CRON.fullmatch(expression):
        fields = m.group(1).split()
        if "?" not in (fields[2], fields[4]):
            raise ValueError(f"{expression}: day-of-month or day-of-week must be '?'")
        return None
    raise ValueError(f"{expression!r} is neither rate(...) nor cron(...)")


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(2 hours)", 7200),
        ("cron(0/5 * * * ? *)", None),
    ],
)
def test_schedule_parser_accepts(expression: str, seconds: float | None) -> None:
    assert parse_schedule(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(30 seconds)",
        "cron(0 12 * * *)",
        "cron(0 12 * * * *)",
        "every 5 minutes",
    ],
)
def test_schedule_parser_refuses(expression: str) -> None:
    with pytest.raises(ValueError, match=r"rate|cron|minute|'\?'"):
        parse_schedule(expression)


def _schedules() -> dict[str, dict[str, Any]]:
    out = {}
    for name in FUNCTIONS:
        for ev_name, ev in _events(name, "Schedule").items():
            out[f"{name}.{ev_name}"] = ev
    return out


def test_one_schedule_per_channel_group() -> None:
    groups = sorted(
        json.loads(RESOLVER.value(ev["Input"]))["group"] for ev in _schedules().values()
    )
    assert groups == ["crypto", "equities", "news"]


@pytest.mark.parametrize("key", sorted(_schedules()))
def test_schedule_expression_parses_and_input_is_a_valid_group(key: str) -> None:
    ev = _schedules()[key]
    expression = RESOLVER.value(ev["Schedule"])
    seconds = parse_schedule(expression)
    assert seconds is None or seconds >= 60, "EventBridge's finest rate is one minute"
    param = TEMPLATE["Parameters"][ev["Schedule"]["Ref"]]
    # The parameter's AllowedPattern keeps a deploy-time override in the same shape.
    assert re.fullmatch(param["AllowedPattern"], expression)
    group = IngestGroup.model_validate(json.loads(RESOLVER.value(ev["Input"])))
    assert group.group in key.lower()


def test_schedule_parameter_pattern_refuses_what_eventbridge_refuses() -> None:
    pattern = TEMPLATE["Parameters"]["CryptoIngestSchedule"]["AllowedPattern"]
    assert re.fullmatch(pattern, "rate(5 minutes)")
    assert not re.fullmatch(pattern, "rate(0 minutes)")
    assert not re.fullmatch(pattern, "rate(30 seconds)")


# ------------------------------------------------------------------ queues


def _dlq_of(queue: str) -> str:
    redrive = _props(queue)["RedrivePolicy"]
    target = redrive["deadLetterTargetArn"]
    assert target["Fn::GetAtt"][1] == "Arn"
    return str(target["Fn::GetAtt"][0])


SOURCE_QUEUES = sorted(q for q in QUEUES if "RedrivePolicy" in _props(q))


def test_queues_are_signals_and_orders_fifo() -> None:
    assert SOURCE_QUEUES == ["OrdersQueue", "SignalsQueue"]
    assert RESOLVER.value(_props("OrdersQueue")["QueueName"]).endswith(".fifo")
    assert _props("OrdersQueue")["FifoQueue"] is True
    assert _props("OrdersQueue")["ContentBasedDeduplication"] is False, "explicit dedup ids"
    assert "FifoQueue" not in _props("SignalsQueue")


def test_every_queue_is_a_source_or_the_dlq_of_one() -> None:
    dlqs = {_dlq_of(q) for q in SOURCE_QUEUES}
    assert set(QUEUES) == set(SOURCE_QUEUES) | dlqs
    assert len(dlqs) == len(SOURCE_QUEUES), "each queue has its own DLQ"


@pytest.mark.parametrize("queue", SOURCE_QUEUES)
def test_queue_has_dlq_redrive_and_alarm(queue: str) -> None:
    dlq = _dlq_of(queue)
    redrive = _props(queue)["RedrivePolicy"]
    max_receive = RESOLVER.value(redrive["maxReceiveCount"])
    assert 1 <= int(max_receive) <= 10
    # A FIFO queue's dead-letter queue must be FIFO too (SQS refuses a mix).
    assert bool(_props(queue).get("FifoQueue")) == bool(_props(dlq).get("FifoQueue"))
    assert int(_props(dlq)["MessageRetentionPeriod"]) >= int(
        _props(queue).get("MessageRetentionPeriod", 345600)
    ), "a DLQ must keep messages at least as long as its source queue"
    alarms = [
        a
        for a in ALARMS.values()
        if a["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [dlq, "QueueName"]}
    ]
    assert len(alarms) == 1, f"{dlq}: needs exactly one alarm"
    alarm = alarms[0]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0
    assert alarm["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }


def test_evaluator_reports_batch_item_failures() -> None:
    (sqs,) = _events("SignalEvaluatorFunction", "SQS").values()
    assert sqs["Queue"] == {"Fn::GetAtt": ["SignalsQueue", "Arn"]}
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= sqs["BatchSize"] <= 10_000
    assert 0 <= sqs["MaximumBatchingWindowInSeconds"] <= 300
    # AWS: the queue's visibility timeout should be at least 6x the function's timeout.
    timeout = int(FUNCTIONS["SignalEvaluatorFunction"].props["Timeout"])
    assert int(_props("SignalsQueue")["VisibilityTimeout"]) >= 6 * timeout


# ------------------------------------------------------------------ idempotency table


def test_idempotency_table_matches_powertools_records() -> None:
    """Powertools' DynamoDB persistence layer keys records by `id` and expires them with
    the `expiration` attribute (epoch seconds) - the table's TTL must use that name."""
    table = _props("IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    env = sam.function_environment(TEMPLATE, "WebhookFunction")
    assert env["ALGOTRENDY_IDEMPOTENCY_TABLE"] == RESOLVER.value(table["TableName"])


# ------------------------------------------------------------------ layer closures

LAYERS = sam.resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion")
# Distributions the python3.11 runtime provides (its /var/runtime).
RUNTIME_DISTS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "six", "python-dateutil"}
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _pins(layer: str) -> dict[str, str]:
    path = sam.ROOT / str(LAYERS[layer]["Properties"]["ContentUri"]) / "requirements.txt"
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            out[_canonical(req.name)] = spec.version
    return out


@cache
def _omitted(layer: str) -> frozenset[str]:
    """Dependencies a layer leaves out on purpose: '# omit: name - why' lines."""
    path = sam.ROOT / str(LAYERS[layer]["Properties"]["ContentUri"]) / "requirements.txt"
    return frozenset(
        _canonical(m) for m in re.findall(r"^# omit: ([\w.-]+)", path.read_text(), re.M)
    )


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_layers_of_a_function_hold_every_dependency_once(name: str) -> None:
    """Layers install with --no-deps, so each function's layers together must hold the
    whole dependency closure of what they pin (versions as installed in the test venv),
    with nothing pinned twice at different versions."""
    pinned: dict[str, str] = {}
    omitted: set[str] = set()
    for layer in FUNCTIONS[name].layers:
        if layer == "CoreLayer":
            continue
        omitted |= _omitted(layer)
        for dist, version in _pins(layer).items():
            assert pinned.setdefault(dist, version) == version, f"{dist} pinned twice"
    missing = set()
    for dist in pinned:
        for text in metadata.requires(dist) or []:
            dep = Requirement(text)
            if dep.marker is not None and not dep.marker.evaluate({"extra": ""}):
                continue
            key = _canonical(dep.name)
            if key not in pinned and key not in RUNTIME_DISTS and key not in omitted:
                missing.add(f"{key} (needed by {dist})")
    assert not missing, f"{name}: not in its layers nor the runtime: {sorted(missing)}"


# ------------------------------------------------------------------ samconfig.toml


def _overrides(env: str) -> dict[str, str]:
    import shlex
    import tomllib

    config = tomllib.loads((sam.ROOT / "samconfig.toml").read_text())
    text = config[env]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


@pytest.mark.parametrize("env", ["default", "prod"])
def test_samconfig_overrides_name_parameters_with_allowed_values(env: str) -> None:
    overrides = _overrides(env)
    params = TEMPLATE["Parameters"]
    assert set(overrides) <= set(params), f"unknown parameters {set(overrides) - set(params)}"
    for key, value in overrides.items():
        if "AllowedValues" in params[key]:
            assert value in [str(v) for v in params[key]["AllowedValues"]], key
        if "AllowedPattern" in params[key]:
            assert re.fullmatch(params[key]["AllowedPattern"], value), key
        if key.endswith(("SecretName", "ParameterName")):
            assert f"/{overrides['Stage']}/" in value, f"{key} of another stage: {value}"


def test_evaluator_may_hasten_the_retry_of_its_failed_records_and_knows_its_queue() -> None:
    """functions/signal_evaluator shortens a failed record's visibility on the queue it
    reads (algotrendy.messaging.retry): that needs the queue's URL and this one action,
    which the SQS event source's own role does not include."""
    env = sam.function_environment(TEMPLATE, "SignalEvaluatorFunction")
    assert env["ALGOTRENDY_SIGNALS_QUEUE_URL"].endswith("/algotrendy-signals-dev")
    (change,) = [
        s
        for s in _statements("SignalEvaluatorFunction")
        if s["Action"] == "sqs:ChangeMessageVisibility"
    ]
    assert change["Resource"] == {"Fn::GetAtt": ["SignalsQueue", "Arn"]}


def test_s3_writers_may_put_objects_only() -> None:
    """SAM's S3WritePolicy also grants PutObjectAcl and PutLifecycleConfiguration, which no
    function uses: the backtest functions get s3:PutObject on the bucket's objects."""
    for name in ("BacktestPlanFunction", "BacktestWorkerFunction", "BacktestAggregateFunction"):
        policies = _props(name)["Policies"]
        assert not any(isinstance(p, dict) and "S3WritePolicy" in p for p in policies), name
        (put,) = [s for s in _statements(name) if s["Action"] == "s3:PutObject"]
        assert RESOLVER.value(put["Resource"]).endswith(
            ":::" + RESOLVER.value({"Ref": "ArtefactsBucket"}) + "/*"
        )


def test_api_has_no_access_to_what_it_does_not_call() -> None:
    """The API sends order intents, starts/stops backtests and reads their ranked rows; it
    never writes the artefacts bucket nor announces candles."""
    policies = _props("ApiFunction")["Policies"]
    assert not any(isinstance(p, dict) and "S3WritePolicy" in p for p in policies)
    assert not [s for s in _statements("ApiFunction") if str(s["Action"]).startswith("s3:Put")]
    reads = [
        p["S3ReadPolicy"]["BucketName"]
        for p in policies
        if isinstance(p, dict) and "S3ReadPolicy" in p
    ]
    assert reads == [{"Ref": "ArtefactsBucket"}]
    sends = [
        p["SQSSendMessagePolicy"]["QueueName"]
        for p in policies
        if isinstance(p, dict) and "SQSSendMessagePolicy" in p
    ]
    assert sends == [{"Fn::GetAtt": ["OrdersQueue", "QueueName"]}]
    assert "ALGOTRENDY_SIGNALS_QUEUE_URL" not in sam.function_environment(TEMPLATE, "ApiFunction")


@pytest.mark.parametrize(
    "function", ["CryptoIngestFunction", "EquitiesIngestFunction", "NewsIngestFunction"]
)
def test_a_failing_ingest_raises_an_alarm_and_is_not_retried_by_lambda(function: str) -> None:
    """A run with a failed series fails its invocation (functions/ingest): the Errors
    metric must reach an alarm, and Lambda's two async retries would only fetch again
    what the next scheduled run resumes anyway."""
    assert _props(function)["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    alarms = [
        r["Properties"]
        for r in TEMPLATE["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"]["Namespace"] == "AWS/Lambda"
        and r["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]
    (alarm,) = alarms
    assert alarm["MetricName"] == "Errors"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0


def test_alphavantage_gets_its_key_only_when_configured_and_a_writable_counter() -> None:
    """Its key resolves from Secrets Manager when AlphaVantageSecretName is set (else the
    variable is absent, not empty), and its call counter lives under /tmp, the only
    writable path in Lambda."""
    env = _props("EquitiesIngestFunction")["Environment"]["Variables"]
    condition, key, absent = env["ALGOTRENDY_ALPHAVANTAGE_API_KEY"]["Fn::If"]
    assert condition == "HasAlphaVantage"
    assert absent == {"Ref": "AWS::NoValue"}
    assert re.fullmatch(
        r"\{\{resolve:secretsmanager:\$\{AlphaVantageSecretName\}:SecretString:api_key\}\}",
        key["Fn::Sub"],
    )
    assert env["ALGOTRENDY_STATE_DIR"].startswith("/tmp/")
    assert sam.parameter_defaults(TEMPLATE)["AlphaVantageSecretName"] == ""
