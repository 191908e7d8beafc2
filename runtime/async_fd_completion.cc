// AsyncFd's completion mode (io_uring): multishot receives into provided buffers, chunk
// queueing and lending, sendmsg from the write queue, multishot accept, and the bookkeeping that
// closes the fd only after its last completion. See async_fd.h for the model.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "runtime/async_fd.h"
#include "runtime/completion_io.h"
#include "runtime/worker.h"

namespace shardloop {

bool AsyncFd::submit(uint8_t op) {
  const uint64_t token = with_op(token_.encode(), op);
  absl::Status s;
  switch (op) {
    case io_ops::kRecv:
      s = cio_->recv_multishot(raw_fd_, token);
      break;
    case io_ops::kSend:
      s = cio_->sendmsg(raw_fd_, &send_msg_, token);
      break;
    case io_ops::kAccept:
      s = cio_->accept_multishot(raw_fd_, token);
      break;
    default:
      return false;
  }
  if (!s.ok()) return false;
  ++inflight_;
  if (op == io_ops::kRecv) recv_armed_ = true;
  if (op == io_ops::kSend) send_inflight_ = true;
  if (op == io_ops::kAccept) accept_armed_ = true;
  return true;
}

size_t AsyncFd::take_chunks(char* dst, size_t len) {
  size_t n = 0;
  while (n < len && chunk_head_ < chunks_.size()) {
    Chunk& c = chunks_[chunk_head_];
    absl::Span<const char> src = cio_->buffer(c.id, c.length);
    size_t k = std::min<size_t>(len - n, c.length - c.offset);
    std::memcpy(dst + n, src.data() + c.offset, k);
    c.offset += static_cast<uint32_t>(k);
    n += k;
    if (c.offset == c.length) {
      cio_->recycle_buffer(c.id);
      ++chunk_head_;
    }
  }
  if (chunk_head_ == chunks_.size()) {
    chunks_.clear();
    chunk_head_ = 0;
  }
  return n;
}

void AsyncFd::lend_chunk(ReadOp& op) {
  Chunk& c = chunks_[chunk_head_];
  op.view = cio_->buffer(c.id, c.length).data() + c.offset;
  op.result = static_cast<ssize_t>(c.length - c.offset);
  lent_buffer_ = c.id;
  if (++chunk_head_ == chunks_.size()) {
    chunks_.clear();
    chunk_head_ = 0;
  }
}

void AsyncFd::return_lent_buffer() {
  if (lent_buffer_ >= 0)
    cio_->recycle_buffer(static_cast<uint16_t>(std::exchange(lent_buffer_, -1)));
}

bool AsyncFd::read_from_queue(ReadOp& op) {
  if (queued_chunks() > 0 && op.buf == nullptr) {
    lend_chunk(op);
    update_recv();
    return true;
  }
  if (queued_chunks() > 0) {
    op.result = static_cast<ssize_t>(take_chunks(op.buf, op.len));
    update_recv();
    return true;
  }
  if (recv_end_ != 0) {
    op.result = recv_end_ > 0 ? 0 : recv_end_;
    return true;
  }
  return false;
}

// Keeps one multishot receive armed while the queue has room, and pauses it when it is full.
void AsyncFd::update_recv() {
  if (closing_ || recv_end_ != 0 || quiescing()) return;
  const size_t queued = queued_chunks();
  if (!recv_armed_ && !starved_ && queued < kMaxQueuedChunks / 2) {
    if (!submit(io_ops::kRecv)) recv_end_ = -ENOMEM;
  } else if (recv_armed_ && !recv_cancelling_ && queued >= kMaxQueuedChunks) {
    if (cio_->cancel(with_op(token_.encode(), io_ops::kRecv)).ok()) recv_cancelling_ = true;
  }
}

void AsyncFd::on_completion(const PollEvent& event) {
  const bool final = !(event.flags & kCompletionMore);
  switch (op_of(event.token)) {
    case io_ops::kRecv:
      on_recv(event, final);
      break;
    case io_ops::kSend:
      on_send(event);
      break;
    case io_ops::kAccept:
      on_accept(event, final);
      break;
    case io_ops::kBuffersAvailable:
      starved_ = false;
      if (!closing_ && !quiescing()) update_recv();
      return;  // a notification, not an operation: nothing was in flight
    default:
      return;
  }
  if (final) --inflight_;
  if (closing_ && inflight_ == 0) {
    finish_close();  // may delete this
  } else if (quiescing() && inflight_ == 0) {
    finish_migration();  // hands this object to another worker: nothing after it
  }
}

void AsyncFd::on_recv(const PollEvent& event, bool final) {
  if (event.result > 0) {
    const auto id = static_cast<uint16_t>(event.flags >> kCompletionBufferShift);
    if (closing_) {
      cio_->recycle_buffer(id);
    } else {
      chunks_.push_back(Chunk{id, static_cast<uint32_t>(event.result), 0});
    }
  } else if (event.result == 0) {
    if (!closing_) recv_end_ = 1;
  } else if (event.result == -ENOBUFS) {
    if (!closing_ && !quiescing()) {
      starved_ = true;
      cio_->notify_when_buffers_available(with_op(token_.encode(), io_ops::kBuffersAvailable));
    }
  } else if (event.result != -ECANCELED) {
    if (!closing_) recv_end_ = event.result;
  }
  if (final) {
    recv_armed_ = false;
    recv_cancelling_ = false;
  }
  if (closing_ || quiescing()) return;  // a migrating fd's reader waits for the target
  if (reader_ != nullptr && read_from_queue(*reader_)) {
    resume(std::exchange(reader_, nullptr)->waiter);
  } else {
    update_recv();
  }
}

void AsyncFd::on_send(const PollEvent& event) {
  send_inflight_ = false;
  if (closing_) return;
  if (event.result > 0) {
    write_queue_.consume(static_cast<size_t>(event.result));
  } else {
    write_error_ = event.result < 0 ? -event.result : EIO;
    write_queue_.clear();
  }
  flush_queue();
  wake_writer();
}

void AsyncFd::on_accept(const PollEvent& event, bool final) {
  if (final) accept_armed_ = false;
  if (event.result >= 0) {
    if (closing_) {
      ::close(event.result);
    } else if (acceptor_ != nullptr) {
      acceptor_->result = event.result;
      resume(std::exchange(acceptor_, nullptr)->waiter);
    } else {
      accepted_.push_back(event.result);
    }
    return;
  }
  if (closing_ || event.result == -ECANCELED) return;
  // EMFILE and friends end the multishot accept; the next accept() re-arms it.
  if (acceptor_ != nullptr) {
    acceptor_->result = event.result;
    resume(std::exchange(acceptor_, nullptr)->waiter);
  } else {
    accept_error_ = event.result;
  }
}

}  // namespace shardloop
