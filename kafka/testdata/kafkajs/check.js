// KafkaJS against a qxd node's Kafka listener, run by kafka/clients_kafkajs_test.go:
//
//   node check.js SCENARIO BROKER[,BROKER...] [ARGS...]
//
// Each scenario prints one JSON object on stdout (what the client did and was
// told) for the Go test to check against the SDK; KafkaJS's own log goes to
// stderr. A scenario that fails exits non-zero with the error on stderr.
'use strict'

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs')
const { version } = require('kafkajs/package.json')

const [scenario, brokers, ...args] = process.argv.slice(2)

const kafka = new Kafka({
  clientId: 'qxd-kafkajs-check',
  brokers: brokers.split(','),
  logLevel: process.env.QXD_KAFKAJS_DEBUG ? logLevel.DEBUG : logLevel.WARN,
  logCreator: () => ({ namespace, level, label, log }) => {
    process.stderr.write(`${label} [${namespace}] ${log.message} ${JSON.stringify(log)}\n`)
  },
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function until(what, cond, ms = 30000) {
  const deadline = Date.now() + ms
  for (;;) {
    const got = await cond()
    if (got) return got
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const configOf = (resource, name) => {
  const e = resource.configEntries.find((c) => c.configName === name)
  return e ? e.configValue : null
}

// admin: the admin client's calls on a topic and a group.
async function admin(topic, group) {
  const res = { version, steps: {} }
  const a = kafka.admin()
  await a.connect()
  const created = await a.createTopics({
    waitForLeaders: true,
    topics: [{
      topic, numPartitions: 2, replicationFactor: 1,
      configEntries: [{ name: 'retention.ms', value: '3600000' }, { name: 'max.message.bytes', value: '200000' }],
    }],
  })
  res.steps.createTopics = created
  // A second creation of the same topic: KafkaJS reads TOPIC_ALREADY_EXISTS as false.
  res.steps.createTopicsAgain = await a.createTopics({ topics: [{ topic, numPartitions: 2 }] })
  const md = await a.fetchTopicMetadata({ topics: [topic] })
  res.steps.metadata = md.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => p.partitionId).sort() }))
  const describe = async () => (await a.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'max.message.bytes'] }],
  })).resources[0]
  let d = await describe()
  res.steps.describeConfigs = { 'retention.ms': configOf(d, 'retention.ms'), 'max.message.bytes': configOf(d, 'max.message.bytes') }
  await a.alterConfigs({
    validateOnly: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  })
  d = await describe()
  res.steps.alterConfigs = { 'retention.ms': configOf(d, 'retention.ms') }
  await a.createPartitions({ topicPartitions: [{ topic, count: 3 }] })
  res.steps.createPartitions = (await until('3 partitions', async () => {
    const m = await a.fetchTopicMetadata({ topics: [topic] })
    return m.topics[0].partitions.length === 3 && m.topics[0].partitions
  })).map((p) => p.partitionId).sort()

  // Ten records to each partition, then the first four of partition 0 deleted.
  const p = kafka.producer()
  await p.connect()
  for (let partition = 0; partition < 3; partition++) {
    await p.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ partition, value: `p${partition}-${i}` })) })
  }
  await p.disconnect()
  await a.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '4' }] })
  res.steps.offsets = (await a.fetchTopicOffsets(topic))
    .map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
    .sort((x, y) => x.partition - y.partition)

  // A group that reads everything and commits, then leaves.
  const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await c.connect()
  await c.subscribe({ topics: [topic], fromBeginning: true })
  let read = 0
  await c.run({ eachMessage: async () => { read++ } })
  await until('26 records read', () => read >= 26)
  res.steps.listGroupsWhileMember = (await a.listGroups()).groups.filter((g) => g.groupId === group)
  const dg = (await a.describeGroups([group])).groups[0]
  res.steps.describeGroups = { groupId: dg.groupId, state: dg.state, protocolType: dg.protocolType, members: dg.members.length }
  await c.disconnect()
  res.steps.fetchOffsets = (await until('committed offsets', async () => {
    const o = (await a.fetchOffsets({ groupId: group, topics: [topic] }))[0].partitions
    return o.every((x) => x.offset === '10') && o
  })).sort((x, y) => x.partition - y.partition).map((x) => ({ partition: x.partition, offset: x.offset }))
  const groupOffsets = async (opts = {}) => (await a.fetchOffsets({ groupId: group, topics: [topic], ...opts }))[0].partitions
    .sort((x, y) => x.partition - y.partition).map((x) => ({ partition: x.partition, offset: x.offset }))
  // resetOffsets commits Kafka's logical offsets (-1 latest, -2 earliest) through
  // a consumer it starts in the group; fetchOffsets hands them back.
  await a.resetOffsets({ groupId: group, topic, earliest: false })
  res.steps.resetOffsetsLatest = await groupOffsets()
  await a.resetOffsets({ groupId: group, topic, earliest: true })
  res.steps.resetOffsets = await groupOffsets()
  // A consumer of the group reads such an offset as none and starts where its
  // fromBeginning says: here at each partition's first record. It commits nothing.
  const r = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 })
  await r.connect()
  await r.subscribe({ topics: [topic], fromBeginning: true })
  const after = new Map()
  await r.run({ autoCommit: false, eachMessage: async ({ partition, message }) => {
    const p = after.get(partition) || { partition, first: message.offset, offsets: new Set() }
    p.offsets.add(message.offset)
    after.set(partition, p)
  } })
  await until('26 records read after the reset', () => [...after.values()].reduce((n, p) => n + p.offsets.size, 0) >= 26)
  await r.disconnect()
  res.steps.consumeAfterReset = [...after.values()].sort((x, y) => x.partition - y.partition)
    .map((p) => ({ partition: p.partition, first: p.first, count: p.offsets.size }))
  // fetchOffsets with resolveOffsets reads -2 as the log start (and -1 as its
  // end), and commits what it read.
  res.steps.resolveOffsets = await groupOffsets({ resolveOffsets: true })
  await a.setOffsets({ groupId: group, topic, partitions: [{ partition: 1, offset: '7' }] })
  res.steps.setOffsets = await groupOffsets()
  res.steps.deleteGroups = await a.deleteGroups([group])
  await a.deleteTopics({ topics: [topic] })
  res.steps.deleteTopics = (await until('topic gone', async () => !(await a.listTopics()).includes(topic))) === true
  await a.disconnect()
  return res
}

// produce: keyed records with acks -1, one at a time (each record's partition and
// offset as the client was told), then a gzip batch from an idempotent producer.
async function produce(topic, n) {
  const res = { version, keyed: [], batch: [] }
  const p = kafka.producer()
  await p.connect()
  for (let i = 0; i < Number(n); i++) {
    const key = `key-${i}`
    const [r] = await p.send({ topic, acks: -1, messages: [{ key, value: `v${i}`, headers: { origin: 'kafkajs' } }] })
    if (r.errorCode !== 0) throw new Error(`produce: ${JSON.stringify(r)}`)
    res.keyed.push({ key, value: `v${i}`, partition: r.partition, offset: Number(r.baseOffset) })
  }
  await p.disconnect()
  const ip = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await ip.connect()
  for (let round = 0; round < 3; round++) {
    const messages = Array.from({ length: 20 }, (_, i) => ({ key: `key-${i}`, value: `gz${round}-${i}` }))
    const rs = await ip.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages })
    for (const r of rs) res.batch.push({ partition: r.partition, baseOffset: Number(r.baseOffset), errorCode: r.errorCode })
  }
  await ip.disconnect()
  return res
}

// group: a member reads with eachMessage and commits each record; a second member
// joins (eachBatch) and the partitions are shared; the first leaves and the second
// takes them all; every record is read and the group's offsets are at the ends.
async function group(topic, groupId, total) {
  total = Number(total)
  const res = { version, consumed: [], assignments: [], committed: [] }
  const seen = new Map()
  const record = (who, partition, m) => {
    seen.set(`${partition}/${m.offset}`, true)
    res.consumed.push({ who, partition, offset: Number(m.offset), key: m.key && m.key.toString(), value: m.value.toString() })
  }
  const member = (name) => {
    const c = kafka.consumer({ groupId, sessionTimeout: 10000, rebalanceTimeout: 15000, heartbeatInterval: 500 })
    c.assigned = []
    c.on(c.events.GROUP_JOIN, (e) => {
      c.assigned = (e.payload.memberAssignment[topic] || []).slice().sort()
      res.assignments.push({ who: name, partitions: c.assigned })
    })
    return c
  }
  const a = member('a')
  await a.connect()
  await a.subscribe({ topics: [topic], fromBeginning: true })
  await a.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      record('a', partition, message)
      await a.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
      await sleep(50) // slow enough that b joins before a has read everything
    },
  })
  await until('a has every partition', () => a.assigned.length === 3)
  await until('a read some', () => seen.size >= 10)
  const b = member('b')
  await b.connect()
  await b.subscribe({ topics: [topic], fromBeginning: true })
  await b.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
      for (const m of batch.messages) {
        record('b', batch.partition, m)
        resolveOffset(m.offset)
      }
      await commitOffsetsIfNecessary()
      await heartbeat()
    },
  })
  await until('a and b share the partitions', () => b.assigned.length > 0 && a.assigned.length > 0 &&
    a.assigned.length + b.assigned.length === 3, 45000)
  await a.disconnect()
  await until('b has every partition', () => b.assigned.length === 3, 45000)
  await until(`all ${total} records read`, () => seen.size >= total, 45000)
  await b.disconnect()
  const adm = kafka.admin()
  await adm.connect()
  res.committed = (await adm.fetchOffsets({ groupId, topics: [topic] }))[0].partitions
    .map((x) => ({ partition: x.partition, offset: Number(x.offset) })).sort((x, y) => x.partition - y.partition)
  await adm.disconnect()
  return res
}

// txn: a committed and an aborted transaction to intopic; then read intopic
// (read committed), write each record transformed to outtopic and commit the input
// offsets in the same transaction (sendOffsets); then read outtopic.
async function txn(intopic, outtopic, groupId) {
  const res = { version, consumed: [], output: [], offsets: [] }
  const p = kafka.producer({ transactionalId: 'kafkajs-txn', idempotent: true, maxInFlightRequests: 1, transactionTimeout: 30000 })
  await p.connect()
  let t = await p.transaction()
  await t.send({ topic: intopic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i % 3}`, value: `in${i}` })) })
  await t.commit()
  t = await p.transaction()
  await t.send({ topic: intopic, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ key: 'x', value: `aborted${i}` })) })
  await t.abort()

  const read = async (topic, gid, want, onMessage) => {
    const c = kafka.consumer({ groupId: gid, readUncommitted: false, sessionTimeout: 10000, heartbeatInterval: 500 })
    await c.connect()
    await c.subscribe({ topics: [topic], fromBeginning: true })
    const got = []
    await c.run({ autoCommit: false, eachMessage: async ({ partition, message }) => {
      got.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() })
    } })
    await until(`${want} records of ${topic}`, () => got.length >= want)
    await sleep(1500) // anything more (an aborted record, a duplicate) would show now
    await c.disconnect()
    return got
  }
  res.consumed = await read(intopic, groupId, 10)
  t = await p.transaction()
  await t.send({ topic: outtopic, acks: -1, messages: res.consumed.map((m) => ({ key: m.key, value: `out-${m.value}` })) })
  const ends = {}
  for (const m of res.consumed) ends[m.partition] = Math.max(ends[m.partition] || 0, m.offset + 1)
  res.offsets = Object.entries(ends).map(([partition, offset]) => ({ partition: Number(partition), offset: String(offset) }))
  await t.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: intopic, partitions: res.offsets }] })
  await t.commit()
  await p.disconnect()
  res.output = (await read(outtopic, `${groupId}-check`, 10)).map((m) => m.value)
  return res
}

// cluster: metadata from one broker names them all; keyed records go to every
// partition's leader.
async function cluster(topic, n) {
  const res = { version, brokers: [], keyed: [] }
  const a = kafka.admin()
  await a.connect()
  const c = await a.describeCluster()
  res.brokers = c.brokers.map((b) => `${b.host}:${b.port}`).sort()
  const md = await a.fetchTopicMetadata({ topics: [topic] })
  res.leaders = md.topics[0].partitions.map((p) => ({ partition: p.partitionId, leader: p.leader })).sort((x, y) => x.partition - y.partition)
  await a.disconnect()
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await p.connect()
  for (let i = 0; i < Number(n); i++) {
    const [r] = await p.send({ topic, acks: -1, messages: [{ key: `key-${i}`, value: `v${i}` }] })
    res.keyed.push({ key: `key-${i}`, value: `v${i}`, partition: r.partition, offset: Number(r.baseOffset) })
  }
  await p.disconnect()
  return res
}

const scenarios = { admin, produce, group, txn, cluster }

// A promise that never settles (a client call waiting on an answer it will not
// get) leaves Node.js nothing to wait for: it would exit 0 without a word.
process.on('beforeExit', () => {
  process.stderr.write(`${scenario}: Node.js ran out of work before the scenario settled: a KafkaJS call never completed\n`)
  process.exit(1)
})

scenarios[scenario](...args).then(
  (res) => { process.stdout.write(JSON.stringify(res) + '\n'); process.exit(0) },
  (err) => { process.stderr.write(`${scenario}: ${err && err.stack}\n${JSON.stringify(err)}\n`); process.exit(1) },
)
