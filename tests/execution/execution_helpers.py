"""Set-up shared by the execution tests: the engine wired for tests (any database, any
broker), and the risk tests' order, snapshot and manager builders."""

from __future__ import annotations

from sqlalchemy import Engine

from algotrendy.domain.orders import Order, OrderIntent, OrderType, Side
from algotrendy.execution.brokers.base import Broker, BrokerOrder
from algotrendy.execution.brokers.paper import PaperBroker
from algotrendy.execution.brokers.retry import RetryPolicy
from algotrendy.execution.engine import ExecutionEngine
from algotrendy.execution.errors import InvalidOrderError
from algotrendy.execution.ports import MemoryPublisher, PriceSource
from algotrendy.execution.risk import RiskConfig, RiskLimits, RiskManager, RiskSnapshot
from algotrendy.storage.relational.repositories import SqlExecutionRepository

# No position, no working orders, BTC/USDT at 100.
FLAT = RiskSnapshot(
    position=0.0,
    open_buy_quantity=0.0,
    open_sell_quantity=0.0,
    open_orders=0,
    price=100.0,
    daily_pnl=0.0,
)


def intent(side: str, qty: float, n: int = 1, **kw: object) -> OrderIntent:
    """BTC/USDT intent number `n` (its id, so a batch's intents stay distinct)."""
    return OrderIntent.model_validate(
        {"intent_id": f"intent-{n:05d}", "symbol": "BTC/USDT", "side": side, "quantity": qty,
         **kw}
    )  # fmt: skip


def manager(**limits: object) -> RiskManager:
    """A risk manager with these account limits (none given: no limits)."""
    return RiskManager(RiskConfig(account=RiskLimits.model_validate(limits)))


def engine_on(
    db: Engine, broker: Broker, prices: PriceSource, risk: RiskManager | None = None
) -> ExecutionEngine:
    """An engine on `db` (not started): alerts kept in memory, retries without waiting,
    no risk limits unless `risk` is given."""
    return ExecutionEngine(
        repo=SqlExecutionRepository(db),
        broker=broker,
        risk=risk or RiskManager(RiskConfig()),
        prices=prices,
        publisher=MemoryPublisher(),
        retry=RetryPolicy(attempts=3, base_delay=0.0),
        sleep=lambda _s: None,
    )


def alerts(eng: ExecutionEngine, kind: str) -> list[str]:
    """The messages of the engine's alerts of this kind, oldest first."""
    assert isinstance(eng.publisher, MemoryPublisher)
    return [a["message"] for a in eng.publisher.topic("alerts") if a["kind"] == kind]


def stored_order(eng: ExecutionEngine, client_order_id: str) -> Order:
    """The order as the engine's database holds it (the test fails if it is missing)."""
    stored = eng.repo.get_order(client_order_id)
    assert stored is not None, f"{client_order_id} is not stored"
    return stored


class StuckVenue(PaperBroker):
    """A paper venue that refuses to cancel the orders in `stuck` (e.g. locked for a
    closing auction): what a kill-switch sweep cannot cancel."""

    def __init__(self, prices: PriceSource) -> None:
        super().__init__(prices, fee=0.0)
        self.stuck: set[str] = set()

    def cancel(self, client_order_id: str) -> BrokerOrder:
        if client_order_id in self.stuck:
            raise InvalidOrderError("order is locked for the closing auction")
        return super().cancel(client_order_id)


def resting_buy(intent_id: str, *, symbol: str = "BTC/USDT", limit: float = 50.0) -> OrderIntent:
    """A buy limit far below the market: it rests, working, until cancelled."""
    return OrderIntent(intent_id=intent_id, symbol=symbol, side=Side.BUY, quantity=1,
                       order_type=OrderType.LIMIT, limit_price=limit)  # fmt: skip
