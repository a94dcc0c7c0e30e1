//! The store contract, call by call: each call is one job for the writer or a reader.

use super::*;

#[async_trait]
impl Sessions for SqliteStore {
    async fn claim(
        &self,
        id: &SessionId,
        proof: &ProofHash,
        home: Option<&SessionId>,
    ) -> Result<Claim, StoreError> {
        self.claim_with(id, proof, home).await
    }

    async fn create_home(&self, home: &SessionId) -> Result<bool, StoreError> {
        check_home_id(home)?;
        let proof = unguessable_proof()?;
        let home = *home;
        self.write(move |tx| {
            let now = now_ms();
            delete_expired(tx, &home, now)?;
            let inserted = execute(
                tx,
                "INSERT INTO sessions (id, proof, created_ms, last_seen_ms, expires_ms, is_home) \
                 VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING",
                params![&home.as_bytes()[..], &proof.as_bytes()[..], now, now, NEVER],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn peek(&self, id: &SessionId) -> Result<Option<SessionTimes>, StoreError> {
        let id = *id;
        let row = self
            .read(move |r| {
                r.conn
                    .prepare_cached(
                        "SELECT created_ms, last_seen_ms, home FROM sessions \
                         WHERE id = ? AND expires_ms > ?",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![&id.as_bytes()[..], now_ms()], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(db)
            })
            .await?;
        row.map(|(created_ms, last_seen_ms, home)| {
            Ok(SessionTimes {
                created_ms,
                last_seen_ms,
                home: home_from(home)?,
            })
        })
        .transpose()
    }

    async fn verify(
        &self,
        id: &SessionId,
        proof: Option<&ProofHash>,
    ) -> Result<Verify, StoreError> {
        let id = *id;
        let row = self
            .read(move |r| {
                r.conn
                    .prepare_cached(
                        "SELECT proof, created_ms, last_seen_ms, expires_ms, home, is_home \
                         FROM sessions WHERE id = ?",
                    )
                    .and_then(|mut s| {
                        s.query_row([&id.as_bytes()[..]], |r| {
                            Ok(SessionRow {
                                proof: r.get(0)?,
                                created_ms: r.get(1)?,
                                last_seen_ms: r.get(2)?,
                                expires_ms: r.get(3)?,
                                home: r.get(4)?,
                                is_home: r.get(5)?,
                            })
                        })
                        .optional()
                    })
                    .map_err(db)
            })
            .await?;
        let Some(row) = row else {
            return Ok(Verify::Unknown);
        };
        let now = now_ms();
        if row.expires_ms <= now {
            // Waited for, unlike the deletions other reads hand over: once `verify` has said
            // `Unknown`, no record of the session may remain.
            self.write(move |tx| delete_expired(tx, &id, now)).await?;
            return Ok(Verify::Unknown);
        }
        let created_ms = row.created_ms;
        let stored: [u8; 32] = row.proof.try_into().map_err(|_| bad_row("session"))?;
        match proof {
            Some(p) if !row.is_home && ProofHash::from_bytes(stored).matches(p) => {
                let home = home_from(row.home)?;
                if now - row.last_seen_ms < self.touch_interval_ms {
                    return Ok(Verify::Valid { created_ms, home });
                }
                let deadline = self.deadline(created_ms, now);
                // Conditional on the deadline, so a session deleted or expired meanwhile
                // is not brought back; and never on a home, which a finite deadline would
                // make mortal.
                let touched = self
                    .write(move |tx| {
                        execute(
                            tx,
                            "UPDATE sessions SET last_seen_ms = ?1, expires_ms = ?2 \
                             WHERE id = ?3 AND expires_ms > ?1 AND is_home = 0",
                            params![now, deadline, &id.as_bytes()[..]],
                        )
                    })
                    .await?;
                Ok(if touched == 1 {
                    Verify::Valid { created_ms, home }
                } else {
                    Verify::Unknown
                })
            }
            _ => Ok(Verify::Denied { created_ms }),
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        self.write(move |tx| {
            let sid = &id.as_bytes()[..];
            execute(
                tx,
                &format!("{MARK_ENDED} WHERE id = ?2 AND is_home = 0 {MARK_ENDED_CONFLICT}"),
                params![now_ms(), sid],
            )?;
            let n = execute(tx, "DELETE FROM sessions WHERE id = ?", [sid])?;
            Ok(n > 0)
        })
        .await
    }

    async fn sweep(&self) -> Result<usize, StoreError> {
        let absolute_ms = self.absolute_ms();
        self.write(move |tx| {
            let now = now_ms();
            execute(
                tx,
                &format!("{MARK_ENDED} WHERE expires_ms <= ?1 {MARK_ENDED_CONFLICT}"),
                [now],
            )?;
            let expired = execute(tx, "DELETE FROM sessions WHERE expires_ms <= ?", [now])?;
            execute(
                tx,
                "DELETE FROM ended_sessions WHERE ended_ms <= ?",
                [now.saturating_sub(absolute_ms)],
            )?;
            Ok(expired)
        })
        .await
    }

    async fn list_sessions(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SessionId>, Option<String>), StoreError> {
        let Some(after) = crate::store::page_after(cursor) else {
            return Ok((Vec::new(), None));
        };
        let after = after.map(|a| a.to_vec()).unwrap_or_default();
        let page = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids = self
            .read(move |r| {
                let mut s = r
                    .conn
                    .prepare_cached(
                        "SELECT id FROM sessions WHERE id > ?1 AND is_home = 0 AND expires_ms > ?2 \
                         ORDER BY id LIMIT ?3",
                    )
                    .map_err(db)?;
                s.query_map(params![after, now_ms(), page], |r| r.get::<_, Vec<u8>>(0))
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(db)
            })
            .await?;
        let ids: Vec<SessionId> = ids
            .into_iter()
            .filter_map(|b| {
                <[u8; 16]>::try_from(b)
                    .ok()
                    .map(SessionId::from_stored_bytes)
            })
            .collect();
        Ok(crate::store::page_of(ids, limit))
    }
}

#[async_trait]
impl Values for SqliteStore {
    async fn keys(&self, id: &SessionId, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (id, prefix) = (*id, prefix.to_owned());
        self.read(move |r| {
            r.live(&id)?;
            // Filtered here rather than with LIKE, whose `_` wildcard is also a key character.
            let mut s = r
                .conn
                .prepare_cached("SELECT key FROM kv WHERE session_id = ?")
                .map_err(db)?;
            let keys = s
                .query_map([&id.as_bytes()[..]], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            Ok(keys
                .into_iter()
                .filter(|k| k.starts_with(&prefix))
                .collect())
        })
        .await
    }

    async fn get(&self, id: &SessionId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let (id, key) = (*id, key.to_owned());
        self.read(move |r| {
            r.live(&id)?;
            r.conn
                .prepare_cached("SELECT value FROM kv WHERE session_id = ? AND key = ?")
                .and_then(|mut s| {
                    s.query_row(params![&id.as_bytes()[..], key], |r| r.get(0))
                        .optional()
                })
                .map_err(db)
        })
        .await
    }

    async fn set(&self, id: &SessionId, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(key, value)?;
        let (id, key, value) = (*id, key.to_owned(), value.to_vec());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let (count, exists): (i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(key = ?2), 0) FROM kv WHERE session_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![&id.as_bytes()[..], key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(db)?;
            if exists == 0 && count as usize >= MAX_KEYS {
                return Err(StoreError::TooManyKeys);
            }
            execute(
                tx,
                "INSERT INTO kv (session_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value",
                params![&id.as_bytes()[..], key, value],
            )?;
            Ok(())
        })
        .await
    }

    async fn add(&self, id: &SessionId, key: &str, delta: i64) -> Result<i64, StoreError> {
        check_key(key)?;
        let (id, key) = (*id, key.to_owned());
        // One writer at a time: reading and writing in this transaction is one step.
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let (count, current): (i64, Option<Vec<u8>>) = tx
                .prepare_cached(
                    "SELECT COUNT(*), MAX(CASE WHEN key = ?2 THEN value END) FROM kv \
                     WHERE session_id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![&id.as_bytes()[..], key], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                })
                .map_err(db)?;
            if current.is_none() && count as usize >= MAX_KEYS {
                return Err(StoreError::TooManyKeys);
            }
            let (sum, stored) = confide_core::store::add_to_counter(current.as_deref(), delta)?;
            execute(
                tx,
                "INSERT INTO kv (session_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (session_id, key) DO UPDATE SET value = excluded.value",
                params![&id.as_bytes()[..], key, stored],
            )?;
            Ok(sum)
        })
        .await
    }

    async fn remove(&self, id: &SessionId, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        let (id, key) = (*id, key.to_owned());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "DELETE FROM kv WHERE session_id = ? AND key = ?",
                params![&id.as_bytes()[..], key],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl Chats for SqliteStore {
    async fn list_threads(&self, id: &SessionId) -> Result<Vec<Thread>, StoreError> {
        let id = *id;
        self.read(move |r| {
            r.live(&id)?;
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS} FROM threads WHERE session_id = ? \
                     ORDER BY updated_ms DESC, created_ms DESC"
                ))
                .map_err(db)?;
            let rows = s
                .query_map([&id.as_bytes()[..]], raw_thread)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            rows.into_iter().map(RawThread::parse).collect()
        })
        .await
    }

    async fn get_thread(
        &self,
        id: &SessionId,
        thread: &ThreadId,
    ) -> Result<Option<(Thread, Vec<Message>)>, StoreError> {
        let (id, thread) = (*id, *thread);
        self.read(move |r| {
            r.live(&id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let t = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS} FROM threads WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| s.query_row([sid, tid], raw_thread).optional())
                .map_err(db)?;
            let Some(t) = t else { return Ok(None) };
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ? AND thread_id = ? ORDER BY seq"
                ))
                .map_err(db)?;
            let rows = s
                .query_map([sid, tid], raw_message)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            let messages = rows
                .into_iter()
                .map(RawMessage::parse)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((t.parse()?, messages)))
        })
        .await
    }

    async fn thread_tail(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        last: usize,
    ) -> Result<Option<ThreadTail>, StoreError> {
        let (id, thread) = (*id, *thread);
        let last = i64::try_from(last).unwrap_or(i64::MAX);
        self.read(move |r| {
            r.live(&id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let t = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {THREAD_COLUMNS}, message_count FROM threads \
                     WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| {
                    s.query_row([sid, tid], |row| {
                        Ok((raw_thread(row)?, row.get::<_, i64>(4)?))
                    })
                    .optional()
                })
                .map_err(db)?;
            let Some((t, count)) = t else { return Ok(None) };
            // Newest first down the index, so only `last` rows are read; turned around after.
            let mut s = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE session_id = ?1 AND thread_id = ?2 ORDER BY seq DESC LIMIT ?3"
                ))
                .map_err(db)?;
            let rows = s
                .query_map(params![sid, tid, last], raw_message)
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(db)?;
            let mut messages = rows
                .into_iter()
                .map(RawMessage::parse)
                .collect::<Result<Vec<_>, _>>()?;
            messages.reverse();
            Ok(Some(ThreadTail {
                thread: t.parse()?,
                messages,
                count: usize::try_from(count).map_err(|_| bad_row("thread"))?,
            }))
        })
        .await
    }

    async fn create_thread(&self, id: &SessionId, thread: &Thread) -> Result<(), StoreError> {
        let (id, thread) = (*id, thread.clone());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let count: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM threads WHERE session_id = ?")
                .and_then(|mut s| s.query_row([&id.as_bytes()[..]], |r| r.get(0)))
                .map_err(db)?;
            if count as usize >= MAX_THREADS {
                return Err(StoreError::TooManyThreads);
            }
            execute(
                tx,
                "INSERT INTO threads (session_id, id, title, created_ms, updated_ms) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, id) DO NOTHING",
                params![
                    &id.as_bytes()[..],
                    &thread.id.as_bytes()[..],
                    thread.title,
                    thread.created_ms,
                    thread.updated_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_thread(&self, id: &SessionId, thread: &Thread) -> Result<bool, StoreError> {
        let (id, thread) = (*id, thread.clone());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "UPDATE threads SET title = ?, created_ms = ?, updated_ms = ? \
                 WHERE session_id = ? AND id = ?",
                params![
                    thread.title,
                    thread.created_ms,
                    thread.updated_ms,
                    &id.as_bytes()[..],
                    &thread.id.as_bytes()[..]
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_thread(&self, id: &SessionId, thread: &ThreadId) -> Result<bool, StoreError> {
        let (id, thread) = (*id, *thread);
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let n = execute(
                tx,
                "DELETE FROM threads WHERE session_id = ? AND id = ?",
                [&id.as_bytes()[..], &thread.as_bytes()[..]],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_message(
        &self,
        id: &SessionId,
        message: &MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let (id, message) = (*id, *message);
        self.read(move |r| {
            r.live(&id)?;
            let row = r
                .conn
                .prepare_cached(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND id = ?"
                ))
                .and_then(|mut s| {
                    s.query_row([&id.as_bytes()[..], &message.as_bytes()[..]], raw_message)
                        .optional()
                })
                .map_err(db)?;
            row.map(RawMessage::parse).transpose()
        })
        .await
    }

    async fn replace_message(&self, id: &SessionId, m: &Message) -> Result<bool, StoreError> {
        let id = *id;
        let m = Stored::of(m)?;
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            put_one(tx, &id, &m, false)
        })
        .await
    }

    async fn put_messages(&self, id: &SessionId, ms: &[Message]) -> Result<bool, StoreError> {
        self.put(id, None, ms).await
    }

    async fn put_turn(
        &self,
        id: &SessionId,
        after: Option<&MessageId>,
        ms: &[Message],
    ) -> Result<bool, StoreError> {
        self.put(id, Some(after.copied()), ms).await
    }

    async fn truncate_after(
        &self,
        id: &SessionId,
        thread: &ThreadId,
        after: Option<&MessageId>,
    ) -> Result<usize, StoreError> {
        let (id, thread, after) = (*id, *thread, after.copied());
        self.write(move |tx| {
            live_for_write(tx, &id)?;
            let sid = &id.as_bytes()[..];
            let tid = &thread.as_bytes()[..];
            let from_seq: i64 = match after {
                None => 0,
                Some(mid) => {
                    let seq: Option<i64> = tx
                        .prepare_cached(
                            "SELECT seq FROM messages \
                             WHERE session_id = ? AND thread_id = ? AND id = ?",
                        )
                        .and_then(|mut s| {
                            s.query_row([sid, tid, &mid.as_bytes()[..]], |r| r.get(0))
                                .optional()
                        })
                        .map_err(db)?;
                    match seq {
                        Some(s) => s,
                        None => return Ok(0),
                    }
                }
            };
            let dropped = execute(
                tx,
                "DELETE FROM messages WHERE session_id = ? AND thread_id = ? AND seq > ?",
                params![sid, tid, from_seq],
            )?;
            if dropped > 0 {
                execute(
                    tx,
                    "UPDATE threads SET message_count = message_count - ? \
                     WHERE session_id = ? AND id = ?",
                    params![dropped as i64, sid, tid],
                )?;
            }
            Ok(dropped)
        })
        .await
    }
}

#[async_trait]
impl Probe for SqliteStore {
    async fn exists_raw(&self, id: &SessionId) -> Result<bool, StoreError> {
        let id = *id;
        self.read(move |r| {
            r.conn
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?")
                .and_then(|mut s| {
                    s.query_row([&id.as_bytes()[..]], |r| r.get::<_, i64>(0))
                        .optional()
                })
                .map(|row| row.is_some())
                .map_err(db)
        })
        .await
    }
}
