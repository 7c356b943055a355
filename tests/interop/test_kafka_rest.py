"""The Kafka REST Proxy v2 and the schema registry through Confluent's own Python client:
``confluent_kafka.schema_registry.SchemaRegistryClient`` registers and fetches schemas, its
Avro, JSON Schema and Protobuf serializers write records in Confluent's wire format, the bytes
are produced through the REST API, and a consumer of the matching embedded format gets them
back decoded as JSON (and a binary consumer's bytes deserialize with Confluent's deserializers).

The module starts its own dwbroker with the Kafka REST listener (ephemeral port, fresh data
dir); every topic and subject is made unique by the ``uid`` fixture.  Every HTTP call has a
timeout.
"""

from __future__ import annotations

import base64
import json

import pytest
import requests
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import start_broker, stop_broker

V2 = "application/vnd.kafka.v2+json"
TIMEOUT = 10


@pytest.fixture(scope="module")
def kbroker():
    b = start_broker(kafka_rest=True)
    yield b
    stop_broker(b)


@pytest.fixture
def registry(kbroker):
    return SchemaRegistryClient({"url": kbroker.kafka_rest_url})


def produce_bytes(url: str, topic: str, values: list[bytes]) -> dict:
    body = {"records": [{"value": base64.b64encode(v).decode()} for v in values]}
    r = requests.post(f"{url}/topics/{topic}", data=json.dumps(body), timeout=TIMEOUT,
                      headers={"Content-Type": "application/vnd.kafka.binary.v2+json", "Accept": V2})
    assert r.status_code == 200, r.text
    return r.json()


def consume(url: str, group: str, topic: str, fmt: str, n: int) -> list[dict]:
    """``n`` records of ``topic`` read by a new consumer instance of format ``fmt``."""
    r = requests.post(f"{url}/consumers/{group}", timeout=TIMEOUT, headers={"Content-Type": V2},
                      data=json.dumps({"name": "c", "format": fmt, "auto.offset.reset": "earliest"}))
    assert r.status_code == 200, r.text
    base = r.json()["base_uri"]
    r = requests.post(f"{base}/subscription", data=json.dumps({"topics": [topic]}), timeout=TIMEOUT,
                      headers={"Content-Type": V2})
    assert r.status_code == 204, r.text
    got: list[dict] = []
    for _ in range(20):
        r = requests.get(f"{base}/records?timeout=500", timeout=TIMEOUT,
                         headers={"Accept": f"application/vnd.kafka.{fmt}.v2+json"})
        assert r.status_code == 200, r.text
        got += r.json()
        if len(got) >= n:
            break
    requests.delete(base, timeout=TIMEOUT)
    return got


AVRO_READING = json.dumps({
    "type": "record", "name": "Reading", "namespace": "dw.test",
    "fields": [{"name": "sensor", "type": "string"}, {"name": "celsius", "type": "double"}],
})


def test_avro_serializer_registry_rest_produce_and_both_consumers(kbroker, registry, uid):
    topic = f"avro-{uid}"
    ctx = SerializationContext(topic, MessageField.VALUE)
    ser = AvroSerializer(registry, AVRO_READING)
    data = ser({"sensor": "s1", "celsius": 21.5}, ctx)
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    # Registered under the topic name strategy's subject, fetchable by id.
    latest = registry.get_latest_version(f"{topic}-value")
    assert latest.schema_id == schema_id and latest.version == 1
    assert json.loads(registry.get_schema(schema_id).schema_str)["name"] == "Reading"
    produce_bytes(kbroker.kafka_rest_url, topic, [data])
    [decoded] = consume(kbroker.kafka_rest_url, f"g-{uid}", topic, "avro", 1)
    assert decoded["value"] == {"sensor": "s1", "celsius": 21.5}
    [raw] = consume(kbroker.kafka_rest_url, f"b-{uid}", topic, "binary", 1)
    back = AvroDeserializer(registry)(base64.b64decode(raw["value"]), ctx)
    assert back == {"sensor": "s1", "celsius": 21.5}


def test_rest_produce_with_an_avro_schema_is_readable_by_confluents_deserializer(kbroker, registry, uid):
    topic = f"avro-rest-{uid}"
    body = {"value_schema": AVRO_READING, "records": [{"value": {"sensor": "s2", "celsius": -3.25}}]}
    r = requests.post(f"{kbroker.kafka_rest_url}/topics/{topic}", data=json.dumps(body), timeout=TIMEOUT,
                      headers={"Content-Type": "application/vnd.kafka.avro.v2+json", "Accept": V2})
    assert r.status_code == 200, r.text
    schema_id = r.json()["value_schema_id"]
    assert registry.get_latest_version(f"{topic}-value").schema_id == schema_id
    [raw] = consume(kbroker.kafka_rest_url, f"g-{uid}", topic, "binary", 1)
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert AvroDeserializer(registry)(base64.b64decode(raw["value"]), ctx) == {"sensor": "s2", "celsius": -3.25}


def test_json_schema_serializer_round_trip(kbroker, registry, uid):
    topic = f"json-{uid}"
    schema = json.dumps({"type": "object", "properties": {"sensor": {"type": "string"},
                                                            "celsius": {"type": "number"}},
                         "required": ["sensor"]})
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = JSONSerializer(schema, registry)({"sensor": "s3", "celsius": 19.0}, ctx)
    produce_bytes(kbroker.kafka_rest_url, topic, [data])
    [decoded] = consume(kbroker.kafka_rest_url, f"g-{uid}", topic, "jsonschema", 1)
    assert decoded["value"] == {"sensor": "s3", "celsius": 19.0}
    [raw] = consume(kbroker.kafka_rest_url, f"b-{uid}", topic, "binary", 1)
    assert JSONDeserializer(schema, schema_registry_client=registry)(base64.b64decode(raw["value"]), ctx) == \
        {"sensor": "s3", "celsius": 19.0}


def reading_class():
    """A protobuf message class built at run time (no protoc): ``dwtest.Reading``."""
    fd = descriptor_pb2.FileDescriptorProto(name="dwtest/reading.proto", package="dwtest", syntax="proto3")
    m = fd.message_type.add(name="Reading")
    m.field.add(name="sensor", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    m.field.add(name="celsius", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("dwtest.Reading"))


def test_protobuf_serializer_round_trip(kbroker, registry, uid):
    topic = f"proto-{uid}"
    Reading = reading_class()
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = ProtobufSerializer(Reading, registry)(Reading(sensor="s4", celsius=7.5), ctx)
    assert data[0] == 0 and data[5] == 0, "magic byte, then message indexes [0]"
    produce_bytes(kbroker.kafka_rest_url, topic, [data])
    [decoded] = consume(kbroker.kafka_rest_url, f"g-{uid}", topic, "protobuf", 1)
    assert decoded["value"] == {"sensor": "s4", "celsius": 7.5}
    [raw] = consume(kbroker.kafka_rest_url, f"b-{uid}", topic, "binary", 1)
    back = ProtobufDeserializer(Reading)(base64.b64decode(raw["value"]), ctx)
    assert (back.sensor, back.celsius) == ("s4", 7.5)
    # The registry serves the schema as the Python client reads it (format=serialized).
    schema_id = int.from_bytes(data[1:5], "big")
    assert registry.get_schema(schema_id).schema_type == "PROTOBUF"


def test_registry_versions_compatibility_and_errors(registry, uid):
    subject = f"evolve-{uid}"
    v1 = Schema(AVRO_READING, "AVRO")
    id1 = registry.register_schema(subject, v1)
    assert registry.register_schema(subject, v1) == id1, "the same schema is the same version"
    widened = json.loads(AVRO_READING)
    widened["fields"].append({"name": "unit", "type": "string", "default": "C"})
    id2 = registry.register_schema(subject, Schema(json.dumps(widened), "AVRO"))
    assert id2 != id1 and registry.get_versions(subject) == [1, 2]
    breaking = json.loads(AVRO_READING)
    breaking["fields"].append({"name": "station", "type": "string"})
    assert registry.test_compatibility(subject, Schema(json.dumps(breaking), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        registry.register_schema(subject, Schema(json.dumps(breaking), "AVRO"))
    assert e.value.http_status_code == 409
    registry.set_compatibility(subject, "NONE")
    assert registry.get_compatibility(subject) == "NONE"
    assert registry.register_schema(subject, Schema(json.dumps(breaking), "AVRO")) > id2
    with pytest.raises(SchemaRegistryError) as e:
        registry.register_schema(f"bad-{uid}", Schema("{\"type\": \"recordd\"}", "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)
    with pytest.raises(SchemaRegistryError) as e:
        registry.get_version(f"missing-{uid}", 1)
    assert e.value.error_code == 40401
    assert registry.delete_subject(subject) == [1, 2, 3]
    assert subject not in registry.get_subjects()
