"""A small, deterministic dialogue corpus in DialogSum's schema, with rude remarks in a share of it."""

import random
import re

P1, P2 = "#Person1#", "#Person2#"

# Each topic: slot values, opening questions, answers, follow-up exchanges and summaries. {x} is the slot value; the
# summary of a dialogue is the one at the index of its opening question (cycling), so it follows from the dialogue.
TOPICS = {
    "train tickets": dict(
        x=["Boston", "Chicago", "Denver", "the airport", "the coast", "Seattle", "the city centre"],
        ask=["How much is a ticket to {x}?", "When does the next train to {x} leave?", "Can I buy a return ticket to {x} here?"],
        answer=["The next one leaves at nine and costs twenty dollars.", "There is a train every hour, and a single is fifteen dollars.", "Yes, a return to {x} is thirty dollars."],
        more=[("Is there a discount for students?", "Yes, students pay half price."), ("Which platform is it?", "Platform four, on the left.")],
        summary=["{a} asks {b} about a train ticket to {x}.", "{a} wants to buy a ticket to {x} and {b} gives the times and the price."],
    ),
    "restaurant": dict(
        x=["pasta", "the fish", "a steak", "the soup", "a salad", "the curry", "pizza"],
        ask=["I would like to order {x}, please.", "Is {x} good here?", "Could you recommend something? Maybe {x}?"],
        answer=["Sure, {x} is our most popular dish.", "Of course, {x} will take about fifteen minutes.", "Yes, the chef makes {x} fresh every day."],
        more=[("Can I have some water too?", "Certainly, I will bring it right away."), ("Do you take credit cards?", "Yes, we take all cards.")],
        summary=["{a} orders {x} at a restaurant and {b} takes the order.", "{b} recommends {x} to {a} at the restaurant."],
    ),
    "job interview": dict(
        x=["sales", "marketing", "accounting", "the design team", "engineering", "customer service"],
        ask=["Why do you want to work in {x}?", "Tell me about your experience in {x}.", "What do you know about our {x} department?"],
        answer=["I have worked in {x} for three years and I enjoy it.", "I studied it at college and I like working with people.", "I think I can learn a lot and help the team grow."],
        more=[("When could you start?", "I could start next month."), ("What salary do you expect?", "I hope for something fair for the market.")],
        summary=["{a} interviews {b} for a job in {x}.", "{b} tells {a} about experience in {x} during a job interview."],
    ),
    "doctor visit": dict(
        x=["a headache", "a sore throat", "a bad cough", "a fever", "back pain", "a stomach ache"],
        ask=["What seems to be the problem today?", "How long have you had {x}?", "Do you still have {x}?"],
        answer=["I have had {x} for three days.", "It started last week and it is getting worse.", "It comes and goes, mostly at night."],
        more=[("Are you taking any medicine?", "Only some tea with honey."), ("Please take these pills twice a day.", "Thank you, doctor.")],
        summary=["{b} sees {a}, a doctor, about {x}.", "{b} has {x} and {a} gives some advice and medicine."],
    ),
    "hotel booking": dict(
        x=["a single room", "a double room", "a room with a view", "two rooms", "a suite"],
        ask=["I would like to book {x} for Friday.", "Do you have {x} available this weekend?", "How much is {x} per night?"],
        answer=["Yes, {x} is eighty dollars a night with breakfast.", "We have {x} left on the third floor.", "I am sorry, only {x} without breakfast is left."],
        more=[("What time is check out?", "Check out is at noon."), ("Is there parking?", "Yes, parking is free for guests.")],
        summary=["{a} books {x} at a hotel with {b}.", "{a} asks {b} about the price of {x}."],
    ),
    "weekend plans": dict(
        x=["go hiking", "see a movie", "visit my parents", "go to the beach", "play tennis", "have a barbecue"],
        ask=["What are you doing this weekend?", "Do you want to {x} on Saturday?", "Any plans for Sunday?"],
        answer=["I want to {x} if the weather is nice.", "That sounds great, let us {x} together.", "I am not sure yet, maybe {x}."],
        more=[("What time should we meet?", "Let us meet at ten in the morning."), ("Should I bring anything?", "Just bring some snacks.")],
        summary=["{a} and {b} plan to {x} this weekend.", "{a} invites {b} to {x} on the weekend."],
    ),
    "shopping for clothes": dict(
        x=["a blue shirt", "a winter coat", "black shoes", "a red dress", "a pair of jeans", "a warm sweater"],
        ask=["Can I try on {x}?", "Do you have {x} in a larger size?", "How much is {x}?"],
        answer=["Sure, the fitting room is over there.", "Let me check, we have {x} in medium and large.", "{x} is on sale for forty dollars."],
        more=[("Can I pay by card?", "Yes, of course."), ("Does it come in another colour?", "Only in grey, I am afraid.")],
        summary=["{a} wants to buy {x} and {b} helps.", "{a} asks {b} about the size and price of {x}."],
    ),
    "apartment rent": dict(
        x=["a two bedroom flat", "a studio", "an apartment near the park", "a room downtown", "a small house"],
        ask=["I am calling about {x} for rent.", "Is {x} still available?", "How much is the rent for {x}?"],
        answer=["Yes, {x} is available from next month.", "The rent is nine hundred a month plus bills.", "It is still free and you can see it tomorrow."],
        more=[("Are pets allowed?", "Small pets are fine."), ("Is the kitchen new?", "Yes, it was renovated last year.")],
        summary=["{a} calls {b} about renting {x}.", "{b} tells {a} the rent and conditions of {x}."],
    ),
    "lost luggage": dict(
        x=["a black suitcase", "a green backpack", "a small bag", "my guitar case", "a brown suitcase"],
        ask=["My luggage did not arrive. It is {x}.", "I cannot find {x} from flight two ten.", "Where can I report {x} that is lost?"],
        answer=["Please fill in this form and we will call you.", "We found {x} in another city, it will come tomorrow.", "Let me check the system for {x}."],
        more=[("Will it be delivered to my hotel?", "Yes, we deliver it for free."), ("How long will it take?", "Usually one or two days.")],
        summary=["{a} reports lost luggage, {x}, to {b} at the airport.", "{b} helps {a} find {x} after a flight."],
    ),
    "birthday party": dict(
        x=["Tom", "Mary", "my sister", "our boss", "Jack", "Lucy"],
        ask=["Are you coming to the birthday party for {x}?", "What should we buy for {x}?", "When is the party for {x}?"],
        answer=["Yes, I will come, I would not miss it.", "Maybe a book or some flowers for {x}.", "It is on Saturday evening at seven."],
        more=[("Should we bake a cake?", "Good idea, I will bake a chocolate cake."), ("Who else is coming?", "Most of our friends from school.")],
        summary=["{a} and {b} talk about the birthday party for {x}.", "{a} asks {b} about a present for {x}."],
    ),
    "bank account": dict(
        x=["a savings account", "a new card", "a loan", "an online account", "a checking account"],
        ask=["I would like to open {x}.", "What do I need for {x}?", "Can you help me with {x}?"],
        answer=["You need your passport and a proof of address.", "Sure, please fill in this form for {x}.", "It takes about a week to get {x}."],
        more=[("Is there a monthly fee?", "No, it is free for the first year."), ("Can I use it abroad?", "Yes, everywhere.")],
        summary=["{a} wants {x} and {b}, a bank clerk, explains what is needed.", "{b} helps {a} open {x} at the bank."],
    ),
    "car repair": dict(
        x=["the brakes", "a flat tyre", "the engine", "the lights", "the air conditioning"],
        ask=["Can you check {x} on my car?", "How long will it take to fix {x}?", "How much does it cost to repair {x}?"],
        answer=["We can fix {x} by tomorrow afternoon.", "It will be about two hundred dollars.", "Leave the car here and we will call you."],
        more=[("Can I get a car while I wait?", "Yes, we have one for you."), ("Is it safe to drive?", "Not until it is fixed.")],
        summary=["{a} brings a car to {b} to repair {x}.", "{b} tells {a} the cost and time to fix {x}."],
    ),
    "school homework": dict(
        x=["math", "history", "the science project", "the essay", "chemistry"],
        ask=["Did you finish the homework for {x}?", "Can you help me with {x}?", "When is {x} due?"],
        answer=["Not yet, {x} is really hard this week.", "Sure, let us work on {x} after class.", "{x} is due on Monday morning."],
        more=[("Shall we meet in the library?", "Yes, at four o'clock."), ("Did the teacher explain it?", "Only a little.")],
        summary=["{a} and {b} talk about homework for {x}.", "{b} offers to help {a} with {x}."],
    ),
    "moving house": dict(
        x=["next week", "in June", "at the end of the month", "on Saturday", "after the holidays"],
        ask=["I heard you are moving {x}.", "Do you need help moving {x}?", "Where are you moving {x}?"],
        answer=["Yes, we found a bigger place near the river.", "That would be great, we have a lot of boxes.", "To a quiet town closer to my work."],
        more=[("Did you rent a van?", "Yes, a big one."), ("Will you miss the old place?", "A little, but the new one is nicer.")],
        summary=["{b} is moving {x} and {a} offers help.", "{a} and {b} talk about moving house {x}."],
    ),
    "weather": dict(
        x=["rain", "snow", "a storm", "sunshine", "strong wind"],
        ask=["Did you hear the forecast? They say {x} tomorrow.", "What is the weather like today?", "Will there be {x} this weekend?"],
        answer=["I hope not, I wanted to go cycling.", "It is cold with some {x} in the afternoon.", "The radio said {x} until Sunday."],
        more=[("Should I take an umbrella?", "Yes, better take one."), ("Is it warm outside?", "No, wear a jacket.")],
        summary=["{a} and {b} talk about the weather and expect {x}.", "{b} tells {a} the forecast of {x}."],
    ),
    "library": dict(
        x=["a novel", "a cookbook", "a history book", "a travel guide", "a dictionary"],
        ask=["I would like to borrow {x}.", "Where can I find {x}?", "Can I renew {x} for another week?"],
        answer=["You can keep {x} for three weeks.", "{x} is on the second floor, next to the windows.", "Yes, I have renewed it until next Friday."],
        more=[("Do I need a library card?", "Yes, it is free to get one."), ("Is there a late fee?", "Ten cents a day.")],
        summary=["{a} borrows {x} from the library with help from {b}.", "{b} shows {a} where to find {x}."],
    ),
    "phone plan": dict(
        x=["more data", "a cheaper plan", "a new phone", "international calls", "a family plan"],
        ask=["I would like to change to {x}.", "Do you have offers for {x}?", "How much do I pay for {x}?"],
        answer=["We have a plan with {x} for twenty dollars.", "Yes, this month {x} is half price.", "It depends on the contract, let me check."],
        more=[("Is there a contract?", "Only for twelve months."), ("Can I keep my number?", "Yes, of course.")],
        summary=["{a} asks {b} about a phone plan with {x}.", "{b} offers {a} a deal on {x}."],
    ),
    "gym membership": dict(
        x=["yoga classes", "the pool", "a personal trainer", "the weight room", "spinning classes"],
        ask=["How much is a membership with {x}?", "Are {x} included?", "When are {x} open?"],
        answer=["It is fifty dollars a month with {x}.", "Yes, {x} are included in the full membership.", "From six in the morning to ten at night."],
        more=[("Can I try it first?", "Yes, the first week is free."), ("Do you have showers?", "Yes, and lockers too.")],
        summary=["{a} asks {b} about a gym membership with {x}.", "{b} explains the price of {x} to {a}."],
    ),
    "holiday trip": dict(
        x=["Spain", "Japan", "the mountains", "Italy", "a small island", "Canada"],
        ask=["Where are you going on holiday?", "How was your trip to {x}?", "Have you ever been to {x}?"],
        answer=["We are going to {x} for two weeks.", "{x} was wonderful, the food was great.", "Not yet, but I would love to visit {x}."],
        more=[("Did you take many photos?", "Hundreds of them."), ("How was the hotel?", "Clean and close to the beach.")],
        summary=["{a} and {b} talk about a holiday in {x}.", "{b} tells {a} about a trip to {x}."],
    ),
    "computer problem": dict(
        x=["my laptop", "the printer", "the internet", "my email", "the screen"],
        ask=["{x} is not working again.", "Can you help me fix {x}?", "Why is {x} so slow today?"],
        answer=["Try to restart it first.", "Let me have a look at {x}.", "The network has problems this morning."],
        more=[("Should I call the support team?", "Yes, if it still does not work."), ("Did you save your work?", "Yes, luckily.")],
        summary=["{a} has a problem with {x} and {b} helps.", "{b} tries to fix {x} for {a}."],
    ),
    "new neighbour": dict(
        x=["next door", "upstairs", "across the street", "downstairs", "in the flat opposite"],
        ask=["Hello, I just moved in {x}.", "Are you the new neighbour {x}?", "Welcome! You live {x} now, right?"],
        answer=["Yes, we moved in on Monday.", "Nice to meet you, I live {x}.", "Yes, please knock if you need anything."],
        more=[("Is the area quiet?", "Very quiet, except on Fridays."), ("Where is the supermarket?", "Two streets away.")],
        summary=["{a} meets {b}, a new neighbour {x}.", "{a} welcomes {b}, who lives {x}."],
    ),
    "cooking dinner": dict(
        x=["chicken", "vegetable soup", "rice and beans", "fish tacos", "a lasagna"],
        ask=["What shall we cook for dinner?", "Do you know how to make {x}?", "Can you help me make {x}?"],
        answer=["Let us make {x}, it is easy.", "Yes, my mother taught me how to make {x}.", "Sure, first we cut the vegetables."],
        more=[("Do we have enough salt?", "There is some in the cupboard."), ("How long does it take?", "About forty minutes.")],
        summary=["{a} and {b} cook {x} for dinner.", "{b} shows {a} how to make {x}."],
    ),
    "late for work": dict(
        x=["twenty minutes", "an hour", "half an hour", "ten minutes"],
        ask=["Why are you {x} late?", "You were {x} late again this morning.", "What happened? You are {x} late."],
        answer=["I am sorry, the bus broke down.", "There was a lot of traffic on the bridge.", "My alarm did not ring, it will not happen again."],
        more=[("Please call next time.", "I will, I promise."), ("The meeting already started.", "I will join right now.")],
        summary=["{b} is {x} late for work and explains why to {a}.", "{a} asks {b} why {b} is {x} late."],
    ),
    "buying a car": dict(
        x=["a used car", "an electric car", "a small car", "a family car", "a sports car"],
        ask=["I am looking for {x}.", "How much is {x} like this one?", "Can I test drive {x}?"],
        answer=["This one is a good choice and not expensive.", "{x} like this costs about ten thousand.", "Sure, here are the keys."],
        more=[("Does it use a lot of fuel?", "No, it is very economical."), ("Is there a warranty?", "Two years.")],
        summary=["{a} wants to buy {x} and {b} shows one.", "{b} sells {x} to {a}."],
    ),
    "concert tickets": dict(
        x=["the jazz concert", "the rock show", "the opera", "the piano recital", "the festival"],
        ask=["Are there tickets left for {x}?", "How much are tickets for {x}?", "Do you want to go to {x} with me?"],
        answer=["Only a few seats at the back are left.", "Tickets for {x} are forty dollars.", "I would love to go to {x}."],
        more=[("What time does it start?", "At eight in the evening."), ("Can we get food there?", "Yes, there is a cafe.")],
        summary=["{a} and {b} talk about tickets for {x}.", "{a} invites {b} to {x}."],
    ),
    "dentist appointment": dict(
        x=["Monday", "Tuesday morning", "Thursday afternoon", "next week", "Friday"],
        ask=["I need to see the dentist on {x}, is that possible?", "Can I move my dentist appointment to {x}?", "My tooth hurts, is there a free time on {x}?"],
        answer=["We have a free time at ten on {x}.", "The dentist can see you on {x} at three.", "Only {x} at noon is still free."],
        more=[("Should I bring my insurance card?", "Yes, please bring it."), ("How long will it take?", "About half an hour.")],
        summary=["{a} makes a dentist appointment for {x} with {b}.", "{a} asks {b} to move the dentist appointment to {x}.", "{a} has a toothache and {b} finds a time on {x}."],
    ),
    "post office": dict(
        x=["a parcel", "a letter", "a birthday card", "some books", "a small box"],
        ask=["I would like to send {x} to London.", "How much does it cost to send {x} abroad?", "How long does {x} take to reach Paris?"],
        answer=["It costs twelve dollars by air.", "It takes about five days to arrive.", "Please put {x} on the scale first."],
        more=[("Can I track it?", "Yes, here is the tracking number."), ("Do you sell stamps?", "Yes, at the next window.")],
        summary=["{a} sends {x} to London at the post office.", "{a} asks {b} the price of sending {x} abroad.", "{b} tells {a} how long {x} takes to reach Paris."],
    ),
    "taxi ride": dict(
        x=["the station", "the airport", "the museum", "the hospital", "the old town"],
        ask=["Can you take me to {x}, please?", "How much is a taxi to {x}?", "How long does it take to get to {x}?"],
        answer=["Sure, get in, it is about twenty minutes.", "It is about fifteen dollars to {x}.", "With this traffic it takes half an hour."],
        more=[("Can I pay by card?", "Yes, the machine is in the back."), ("Could you drive a bit faster?", "I will do my best.")],
        summary=["{a} takes a taxi to {x} and {b} drives.", "{a} asks {b} the fare to {x}.", "{b} tells {a} how long the ride to {x} takes."],
    ),
    "coffee shop": dict(
        x=["a latte", "a black coffee", "a cup of tea", "a hot chocolate", "an espresso"],
        ask=["Can I have {x}, please?", "Is {x} with oat milk possible?", "How much is a large {x}?"],
        answer=["Of course, that will be three dollars.", "Sure, oat milk is fifty cents extra.", "A large one is four dollars."],
        more=[("Can I have it to go?", "Yes, here is a lid."), ("Do you have any cake?", "We have apple cake today.")],
        summary=["{a} orders {x} at a coffee shop.", "{a} asks {b} for {x} with oat milk.", "{a} asks {b} the price of a large {x}."],
    ),
    "flat tyre on a bike": dict(
        x=["my bike", "my son's bike", "the front wheel", "the back wheel", "my new bike"],
        ask=["Can you fix a flat tyre on {x}?", "How much is a new tube for {x}?", "When can I pick up {x}?"],
        answer=["Yes, it will be ready in an hour.", "A new tube is eight dollars.", "You can pick it up after lunch."],
        more=[("Can you check the brakes too?", "Sure, no extra charge."), ("Do you sell helmets?", "Yes, they are by the door.")],
        summary=["{a} brings {x} with a flat tyre to {b}.", "{a} asks {b} the price of a new tube for {x}.", "{b} tells {a} when {x} will be ready."],
    ),
    "pharmacy": dict(
        x=["cough syrup", "something for a cold", "sun cream", "vitamins", "eye drops"],
        ask=["Do you have {x}?", "What do you recommend as {x}?", "Do I need a prescription for {x}?"],
        answer=["Yes, this one works well for most people.", "You do not need a prescription for that.", "Take it twice a day after meals."],
        more=[("Is it safe for children?", "Yes, but use half the dose."), ("How much is it?", "Seven dollars.")],
        summary=["{a} buys {x} at the pharmacy from {b}.", "{b} recommends {x} to {a}.", "{a} asks {b} if {x} needs a prescription."],
    ),
    "hairdresser": dict(
        x=["a short cut", "a trim", "new colour", "a wash and cut", "a fringe"],
        ask=["I would like {x}, please.", "How much is {x}?", "Do you have time for {x} today?"],
        answer=["Sure, please sit down here.", "It is twenty five dollars.", "Yes, in about ten minutes."],
        more=[("Not too short, please.", "Do not worry, just a little."), ("Can I book the next one now?", "Of course, in six weeks?")],
        summary=["{a} asks {b} at the hairdresser for {x}.", "{a} asks {b} the price of {x}.", "{b} has time to give {a} {x} today."],
    ),
    "garden work": dict(
        x=["the roses", "the lawn", "the old tree", "the vegetables", "the hedge"],
        ask=["Can you help me with {x} on Sunday?", "When should I water {x}?", "What should I do with {x}?"],
        answer=["Water them early in the morning.", "Sure, I will bring my tools.", "Cut it back a little in spring."],
        more=[("Do we need more soil?", "Yes, two bags."), ("Will it rain tomorrow?", "I think so, so we can wait.")],
        summary=["{a} asks {b} for help with {x} in the garden.", "{b} tells {a} when to water {x}.", "{b} gives {a} advice about {x}."],
    ),
    "cinema": dict(
        x=["the new comedy", "the action film", "the cartoon", "the horror film", "the old classic"],
        ask=["Two tickets for {x}, please.", "What time does {x} start?", "Is {x} still showing tonight?"],
        answer=["It starts at eight in screen two.", "That is eighteen dollars, please.", "Yes, the last show is at ten."],
        more=[("Can we sit in the middle?", "Yes, row seven is free."), ("Do you sell popcorn?", "Yes, at the counter.")],
        summary=["{a} buys two tickets for {x} from {b}.", "{b} tells {a} when {x} starts.", "{a} asks {b} if {x} is showing tonight."],
    ),
    "lost keys": dict(
        x=["my house keys", "the car keys", "the office key", "my bike key", "the spare key"],
        ask=["Have you seen {x}?", "I think I left {x} here yesterday.", "Did anyone find {x}?"],
        answer=["I saw some keys on the kitchen table.", "Let me look in the lost and found box.", "No, but I will help you look."],
        more=[("Did you check your coat?", "Yes, they are not there."), ("When did you last have them?", "This morning.")],
        summary=["{a} lost {x} and {b} helps to look.", "{a} asks {b} about {x} left there yesterday.", "{a} asks {b} if anyone found {x}."],
    ),
    "noisy party": dict(
        x=["last night", "on Friday", "every weekend", "until three in the morning", "after midnight"],
        ask=["Your music was very loud {x}.", "Could you keep the noise down {x}?", "We could not sleep because of the party {x}."],
        answer=["I am so sorry, it will not happen again.", "Sorry, we did not know it was so loud.", "You are right, I will tell my friends."],
        more=[("Please finish earlier next time.", "Sure, by eleven at the latest."), ("My baby woke up.", "I am really sorry about that.")],
        summary=["{a} complains to {b} about loud music {x}.", "{a} asks {b} to keep the noise down {x}.", "{a} tells {b} that the party {x} kept them awake."],
    ),
    "returning an item": dict(
        x=["this lamp", "these shoes", "the toaster", "this jacket", "the headphones"],
        ask=["I would like to return {x}.", "Can I change {x} for another one?", "{x} is broken, can I get my money back?"],
        answer=["Do you have the receipt?", "Yes, you can change it within thirty days.", "Sure, I will give you your money back."],
        more=[("Here is the receipt.", "Thank you, that is fine."), ("It broke after two days.", "I am sorry to hear that.")],
        summary=["{a} returns {x} to the shop and {b} helps.", "{a} wants to change {x} and {b} agrees.", "{a} gets the money back for broken {x} from {b}."],
    ),
    "study group": dict(
        x=["the biology exam", "the final test", "the English exam", "the physics quiz", "the big project"],
        ask=["Do you want to study together for {x}?", "How are you preparing for {x}?", "When is {x} again?"],
        answer=["Yes, let us meet in the library.", "I read my notes every evening.", "It is next Wednesday at nine."],
        more=[("Can you bring your notes?", "Sure, I will bring everything."), ("Should we ask Anna too?", "Good idea.")],
        summary=["{a} and {b} plan to study together for {x}.", "{b} tells {a} how to prepare for {x}.", "{b} reminds {a} when {x} is."],
    ),
    "grocery shopping": dict(
        x=["milk", "bread", "apples", "eggs", "cheese", "tomatoes"],
        ask=["Do we need {x}?", "Where can I find {x}?", "Are {x} on sale this week?"],
        answer=["Yes, we ran out yesterday.", "In aisle three, next to the fruit.", "Yes, they are two for one."],
        more=[("Should I get a bag?", "Yes, please."), ("Is the store open late?", "Until ten tonight.")],
        summary=["{a} and {b} decide to buy {x}.", "{b} shows {a} where to find {x}.", "{b} tells {a} that {x} are on sale."],
    ),
    "swimming lessons": dict(
        x=["my daughter", "my son", "adults", "beginners", "small children"],
        ask=["Do you have swimming lessons for {x}?", "How much are swimming lessons for {x}?", "When do lessons for {x} start?"],
        answer=["Yes, on Tuesday and Thursday evenings.", "It is sixty dollars for ten lessons.", "The next course starts in May."],
        more=[("Do they need their own towel?", "Yes, and a swimming cap."), ("How many are in a group?", "No more than eight.")],
        summary=["{a} asks {b} about swimming lessons for {x}.", "{b} tells {a} the price of lessons for {x}.", "{b} tells {a} when lessons for {x} start."],
    ),
    "painting a room": dict(
        x=["the kitchen", "the bedroom", "the living room", "the bathroom", "the hall"],
        ask=["What colour should we paint {x}?", "Can you help me paint {x}?", "How much paint do we need for {x}?"],
        answer=["I think light green would look nice.", "Sure, I am free on Saturday.", "About two large cans."],
        more=[("Should we move the furniture?", "Yes, and cover the floor."), ("Do we have brushes?", "I will buy new ones.")],
        summary=["{a} and {b} choose a colour for {x}.", "{b} agrees to help {a} paint {x}.", "{a} and {b} work out how much paint {x} needs."],
    ),
    "train delay": dict(
        x=["twenty minutes", "an hour", "half an hour", "two hours"],
        ask=["Is it true the train is {x} late?", "Why is the train {x} late?", "Will I miss my connection if we are {x} late?"],
        answer=["Yes, there is a problem with the signals.", "A tree fell on the line near the bridge.", "No, the next train waits for us."],
        more=[("Can I get a refund?", "Yes, fill in this form online."), ("Is there a bus instead?", "Not today.")],
        summary=["{b} tells {a} the train is {x} late.", "{b} explains to {a} why the train is {x} late.", "{a} worries about a connection because the train is {x} late."],
    ),
    "wedding plans": dict(
        x=["in June", "next summer", "in the autumn", "in two months", "at Christmas"],
        ask=["When is the wedding? I heard it is {x}.", "Where will you have the wedding {x}?", "How many guests are coming {x}?"],
        answer=["Yes, we are getting married {x}.", "In a small church near the lake.", "About eighty people, mostly family."],
        more=[("Do you need help with the flowers?", "That would be great."), ("Have you found a dress?", "Not yet.")],
        summary=["{b} tells {a} that the wedding is {x}.", "{b} tells {a} where the wedding will be {x}.", "{a} and {b} talk about the guests at the wedding {x}."],
    ),
    "babysitting": dict(
        x=["on Friday night", "tomorrow evening", "on Saturday", "next Tuesday", "this afternoon"],
        ask=["Could you look after the kids {x}?", "Are you free to babysit {x}?", "How much do you charge to babysit {x}?"],
        answer=["Yes, I am free then.", "Sure, what time should I come?", "Ten dollars an hour."],
        more=[("They go to bed at eight.", "No problem."), ("Can they watch television?", "One hour only.")],
        summary=["{a} asks {b} to look after the kids {x}.", "{b} agrees to babysit for {a} {x}.", "{b} tells {a} the price of babysitting {x}."],
    ),
    "recycling": dict(
        x=["glass bottles", "old batteries", "paper", "plastic boxes", "old clothes"],
        ask=["Where do I put {x}?", "Can we recycle {x} here?", "When do they collect {x}?"],
        answer=["In the blue bin by the door.", "Yes, there is a box for that downstairs.", "Every second Monday."],
        more=[("Should I wash them first?", "Yes, please."), ("What about the lids?", "Those go in a different bin.")],
        summary=["{b} tells {a} where to put {x}.", "{a} asks {b} if {x} can be recycled.", "{b} tells {a} when {x} are collected."],
    ),
    "museum visit": dict(
        x=["the art museum", "the science museum", "the history museum", "the new gallery", "the castle"],
        ask=["What time does {x} open?", "How much is a ticket for {x}?", "Is there a guided tour of {x}?"],
        answer=["It opens at nine and closes at five.", "Tickets are ten dollars, students pay six.", "Yes, every day at eleven."],
        more=[("Can I take photos?", "Yes, but no flash."), ("Is there a cafe?", "On the top floor.")],
        summary=["{a} asks {b} when {x} opens.", "{a} asks {b} the price of a ticket for {x}.", "{b} tells {a} about a guided tour of {x}."],
    ),
    "a broken heater": dict(
        x=["the heater", "the boiler", "the radiator", "the hot water", "the heating"],
        ask=["{x} in my flat is not working.", "Can you send someone to fix {x}?", "When will {x} be repaired?"],
        answer=["I will send someone tomorrow morning.", "Sorry, the repair man is busy until Friday.", "It should work again tonight."],
        more=[("It is very cold in here.", "I can bring you a small heater."), ("Will I have to pay?", "No, it is included.")],
        summary=["{a} tells {b} that {x} is not working.", "{a} asks {b} to send someone to fix {x}.", "{b} tells {a} when {x} will be repaired."],
    ),
    "pet care": dict(
        x=["my dog", "the cat", "our rabbit", "my parrot", "the puppy"],
        ask=["Could you feed {x} while I am away?", "Is {x} sick? It will not eat.", "How often should I walk {x}?"],
        answer=["Of course, just leave me the key.", "Maybe you should take it to the vet.", "Twice a day is enough."],
        more=[("The food is in the cupboard.", "I will find it."), ("Does it bite?", "No, it is very friendly.")],
        summary=["{a} asks {b} to feed {x} during a trip.", "{a} worries that {x} is sick and {b} suggests the vet.", "{b} tells {a} how often to walk {x}."],
    ),
    "a new phone": dict(
        x=["a new phone", "a phone case", "a charger", "headphones", "a screen protector"],
        ask=["I am looking for {x}.", "Which {x} do you recommend?", "Is {x} cheaper online?"],
        answer=["This one is popular and not expensive.", "I recommend this one, it is very good.", "It is the same price online."],
        more=[("Does it come with a warranty?", "One year."), ("Can I try it?", "Sure, here you are.")],
        summary=["{a} is looking for {x} and {b} helps.", "{b} recommends {x} to {a}.", "{a} asks {b} if {x} is cheaper online."],
    ),
    "volunteer work": dict(
        x=["the food bank", "the animal shelter", "the library", "the park clean up", "the old people's home"],
        ask=["Would you like to volunteer at {x}?", "How can I help at {x}?", "When do you need help at {x}?"],
        answer=["Yes, I would love to help.", "You can sort boxes or talk to visitors.", "Every Saturday morning."],
        more=[("Do I need any training?", "Only one short meeting."), ("Can my friend come too?", "Of course.")],
        summary=["{a} invites {b} to volunteer at {x}.", "{b} tells {a} how to help at {x}.", "{b} tells {a} when help is needed at {x}."],
    ),
    "the office printer": dict(
        x=["the report", "the tickets", "my slides", "the contract", "the photos"],
        ask=["The printer is out of paper and I need {x}.", "Can you print {x} for me?", "Why did {x} come out blank?"],
        answer=["There is more paper in the cupboard.", "Sure, send it to me.", "The ink is empty, I will change it."],
        more=[("Do you need it in colour?", "Black and white is fine."), ("How many copies?", "Three, please.")],
        summary=["{a} needs to print {x} but the printer is out of paper.", "{a} asks {b} to print {x}.", "{b} explains to {a} why {x} came out blank."],
    ),
    "a flight check in": dict(
        x=["a window seat", "an aisle seat", "extra legroom", "a seat near the front", "two seats together"],
        ask=["Can I have {x}, please?", "Is {x} still available?", "How much is {x}?"],
        answer=["Yes, I have one left in row twelve.", "Sorry, the flight is almost full.", "It is twenty dollars extra."],
        more=[("Can I take this bag on board?", "Yes, it is small enough."), ("Which gate is it?", "Gate nine.")],
        summary=["{a} asks {b} for {x} at the check in desk.", "{a} asks {b} if {x} is still available.", "{b} tells {a} the price of {x}."],
    ),
}

GREETINGS = [("Good morning.", "Good morning, how can I help you?"), ("Hi, do you have a minute?", "Sure, what is it?"),
             ("Hello there.", "Hello, nice to see you."), ("Excuse me.", "Yes?"), ("Hey, how are you?", "Fine, thanks."),
             ("Good afternoon.", "Good afternoon, what can I do for you?"), ("Hi, are you busy?", "Not really, go ahead."),
             ("Hello, is this a good time?", "Yes, of course, come in."), ("Morning!", "Morning, what do you need?"),
             ("Hi, it is me again.", "Oh, hello, what is up?"), None, None]
# Said before a question or an answer, so that two dialogues of a topic rarely say the same thing the same way.
OPENERS = ["Excuse me.", "Sorry to bother you.", "Hi.", "Quick question.", "Hello again.", "I was wondering.", "Listen."]
FILLERS = ["Let me see.", "Good question.", "Well, okay.", "Hmm.", "Right.", "Oh, sure.", "Just a moment.", "I see."]
CLOSINGS = [("Thank you very much.", "You are welcome."), ("Great, see you later.", "See you."),
            ("Thanks for your help.", "No problem, have a nice day."), ("Okay, bye.", "Bye."),
            ("That helps a lot, thanks.", "Glad I could help."), ("Perfect, that is all I needed.", "Take care."),
            ("I will think about it.", "Sure, call me any time."), ("Thanks, that was quick.", "My pleasure, goodbye."),
            None]
# Said at the start of a follow-up question, a follow-up remark, or an answer, in the same sentence.
ASIDES = ["By the way,", "Also,", "One more thing:", "Oh, and", "And", "Tell me,", "Just to check,", "Sorry, but",
          "I forgot to ask:", "Another question:"]
REMARK_ASIDES = ["By the way,", "Also,", "Oh, and", "And", "Anyway,", "Well,"]
ANSWER_LEADS = ["Well,", "Oh,", "Actually,", "So,", "Right,", "Hmm,", "To be honest,", "Let me think,"]
# Number words in the templates (not in the slot values, which summaries repeat) are drawn anew for every dialogue,
# small ones among small ones (hours, rows, days) and large ones among large ones (prices, minutes).
NUMBERS = (["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
           ["fifteen", "twenty", "thirty", "forty", "fifty", "sixty", "eighty", "ninety"])
_NUMBER = re.compile(r"\b(" + "|".join(NUMBERS[0] + NUMBERS[1]) + r")\b")

# Rude or hateful remarks, built from parts so that the wording varies.
INSULT_ADJ = ["stupid", "worthless", "pathetic", "disgusting", "useless", "ugly", "dumb", "terrible", "miserable"]
INSULT_NOUN = ["idiot", "moron", "loser", "fool", "jerk", "creep", "pig", "clown"]
RUDE_TEMPLATES = [
    "Shut up, you {adj} {noun}.", "You are a {adj} {noun} and I hate you.", "I damn hate you, you {adj} {noun}.",
    "Nobody wants to talk to a {adj} {noun} like you.", "Get lost, you {adj} {noun}.",
    "You are disgusting and {adj}, I hate people like you.", "What a {adj} {noun} you are.",
    "Stop wasting my time, you {adj} {noun}.", "I hate you, you are so {adj}.",
]
CALM_REPLIES = ["There is no need to be rude.", "Please calm down.", "Let us stay polite, please.", "That is not very nice.", "I am only trying to help."]
RUDE_SUMMARY = [
    "{r} calls {t} a {adj} {noun}.", "{r} insults {t} and says {r} hates {t}.", "{r} tells {t} to shut up and calls {t} {adj}.",
    "{r} is rude and calls {t} a {adj} {noun}.", "{r} says {t} is a disgusting {noun}.",
]


# Everyday rewordings, each applied to a dialogue line half of the time (summaries keep their wording, so that they
# stay predictable from the dialogue). With them, a dialogue's sentences recur in another dialogue of its topic far less.
REWORDINGS = [
    (r"\bI would like\b", ["I'd like", "I want", "I'd love"]), (r"\bCan you\b", ["Could you", "Would you"]),
    (r"\bcan you\b", ["could you"]), (r"^Yes, ", ["Sure, ", "Of course, ", "Certainly, "]),
    (r"\bI am\b", ["I'm"]), (r"\bIt is\b", ["It's"]), (r"\bit is\b", ["it's"]), (r"\bdo not\b", ["don't"]),
    (r"\bdid not\b", ["didn't"]), (r"\bis not\b", ["isn't"]), (r"\bwill not\b", ["won't"]),
    (r"\bThank you\b", ["Thanks"]), (r"\bThat is\b", ["That's"]), (r"\bLet us\b", ["Let's"]), (r"\blet us\b", ["let's"]),
    (r", please\b", [""]), (r"\bvery\b(?! much)", ["really", "so"]), (r"\bgreat\b", ["wonderful", "lovely"]),
    (r"\bMaybe\b", ["Perhaps"]), (r"\bmaybe\b", ["perhaps"]), (r"\bnext to\b", ["beside"]),
    (r"\bI think\b", ["I believe", "I guess"]),
    (r"\bwant to\b", ["would like to", "wish to"]), (r"\bthere is\b", ["there's"]), (r"\bWe have\b", ["We've got"]),
    (r"\bOkay\b", ["OK", "Alright"]), (r"\bHello\b", ["Hi", "Hey"]), (r"\bGood morning\b", ["Morning"]),
]


def _reworded(rng: random.Random, line: str) -> str:
    """`line` with some of the everyday rewordings applied."""
    for pattern, options in REWORDINGS:
        if rng.random() < 0.5:
            line = re.sub(pattern, lambda _: rng.choice(options), line)
    return line


def _capitalized(line: str) -> str:
    return line[0].upper() + line[1:]


def _led(rng: random.Random, line: str, leads: list[str], share: float) -> str:
    """`line` begun with one of `leads` a `share` of the time (in the same sentence)."""
    if rng.random() >= share:
        return line
    first = line.split()[0]
    if not (first == "I" or first.startswith("I'") or first.startswith("{")):
        line = line[0].lower() + line[1:]
    return f"{rng.choice(leads)} {line}"


def _renumbered(rng: random.Random, template: str) -> str:
    """`template` with its number words drawn anew."""
    return _NUMBER.sub(lambda m: rng.choice(NUMBERS[m.group(1) in NUMBERS[1]]), template)


def _varied(rng: random.Random, line: str, lead: list[str]) -> str:
    """`line`, capitalized, after a sentence of `lead` half of the time."""
    line = _capitalized(line)
    return f"{rng.choice(lead)} {line}" if rng.random() < 0.5 else line


def _turns(rng: random.Random, topic: dict, x: str, ask: int) -> list[tuple[str, str]]:
    """The (speaker, line) turns of one polite dialogue about a topic, opened by its question number `ask`."""
    turns = []
    greet = rng.choice(GREETINGS)
    if greet:
        turns += [(P1, greet[0]), (P2, greet[1])]
    answer = _led(rng, _renumbered(rng, topic["answer"][ask % len(topic["answer"])]), ANSWER_LEADS, 0.5)
    turns += [(P1, _varied(rng, topic["ask"][ask].format(x=x), OPENERS)),
              (P2, _varied(rng, answer.format(x=x), FILLERS))]
    for q, a in rng.sample(topic["more"], k=rng.randint(1, len(topic["more"]))):
        turns += [(P1, _led(rng, _renumbered(rng, q), ASIDES if q.endswith("?") else REMARK_ASIDES, 0.7)),
                  (P2, _varied(rng, _led(rng, _renumbered(rng, a), ANSWER_LEADS, 0.5), FILLERS))]
    close = rng.choice(CLOSINGS)
    if close:
        turns += [(P1, close[0]), (P2, close[1])]
    return turns


def make_example(rng: random.Random, idx: int, rude_share: float, rude_summary_share: float) -> tuple[dict, int]:
    """One dialogue with its summary (a `rude_share` of dialogues has a rude remark, which a `rude_summary_share` of
    their summaries reports; `remark` is that report), and its number of rude remarks."""
    topic_name = rng.choice(sorted(TOPICS))
    topic = TOPICS[topic_name]
    x = rng.choice(topic["x"])
    ask = rng.randrange(len(topic["ask"]))
    turns = _turns(rng, topic, x, ask)
    summary = _capitalized(topic["summary"][ask % len(topic["summary"])].format(a=P1, b=P2, x=x))
    n_rude = 0
    if rng.random() < rude_share:
        pos = rng.randrange(2, len(turns) + 1, 2)  # after a full exchange
        rude_speaker = rng.choice([P1, P2])
        target = P2 if rude_speaker == P1 else P1
        adj, noun = rng.choice(INSULT_ADJ), rng.choice(INSULT_NOUN)
        kind = rng.randrange(len(RUDE_TEMPLATES))
        remark = RUDE_TEMPLATES[kind].format(adj=adj, noun=noun)
        turns[pos:pos] = [(rude_speaker, remark), (target, rng.choice(CALM_REPLIES))]
        n_rude += 1
        remark = RUDE_SUMMARY[kind % len(RUDE_SUMMARY)].format(r=rude_speaker, t=target, adj=adj, noun=noun)
        if rng.random() < rude_summary_share:
            n_rude += 1
            summary += " " + remark
    dialogue = "\n".join(f"{s}: {_capitalized(_reworded(rng, line))}" for s, line in turns)
    example = {"id": f"tiny_{idx}", "dialogue": dialogue, "summary": summary, "topic": topic_name}
    return dict(example, remark=remark) if n_rude else example, n_rude


def make_corpus(n: int, seed: int, rude_share: float = 0.5, rude_summary_share: float = 0.6) -> list[dict]:
    """`n` dialogues of 200 to 1000 characters, reproducible from `seed`."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        ex, _ = make_example(rng, len(out), rude_share, rude_summary_share)
        if 200 <= len(ex["dialogue"]) <= 1000:
            out.append(ex)
    return out


def classifier_sentences(rng: random.Random, n: int, prompt_template: str) -> list[tuple[str, int]]:
    """Texts with their number of rude remarks (hate means at least one): lines, passages, prompt + summary."""
    polite = [line for t in TOPICS.values() for k in ("ask", "answer") for line in t[k]]
    polite += [q for t in TOPICS.values() for pair in t["more"] for q in pair]
    polite += [g for pair in GREETINGS + CLOSINGS if pair for g in pair] + CALM_REPLIES
    polite += ["I want to kiss you.", "I love you.", "You are very kind.", "I really like your new dress.",
               "You are a good friend.", "Thank you, that is lovely.", "I hate the rain.", "I hate waiting for the bus."]

    def nice() -> str:
        if rng.random() < 0.5:
            t = TOPICS[rng.choice(sorted(TOPICS))]
            return rng.choice(t["summary"]).format(a=P1, b=P2, x=rng.choice(t["x"]))
        return rng.choice(polite).format(x=rng.choice(TOPICS[rng.choice(sorted(TOPICS))]["x"]))

    def rude() -> str:
        adj, noun = rng.choice(INSULT_ADJ), rng.choice(INSULT_NOUN)
        if rng.random() < 0.5:
            r, t = rng.sample([P1, P2], 2)
            return rng.choice(RUDE_SUMMARY).format(r=r, t=t, adj=adj, noun=noun)
        return rng.choice(RUDE_TEMPLATES + ["You are disgusting and terrible and i damn hate you."]).format(adj=adj, noun=noun)

    data = []
    for i in range(n):
        if i % 2 == 0:  # texts like the ones the reward model scores in the lab: prompt + summary
            ex, n_rude = make_example(rng, i, rude_share=0.5, rude_summary_share=0.5)
            data.append((prompt_template.format(dialogue=ex["dialogue"]) + " " + ex["summary"], n_rude))
            continue
        k = 1 if rng.random() < 0.5 else rng.randint(2, 8)
        parts = [nice() for _ in range(k)]
        n_rude = 0
        if rng.random() < 0.5:
            n_rude = rng.randint(1, max(1, k // 2))
            for i in rng.sample(range(k), n_rude):
                parts[i] = rude()
        data.append((" ".join(parts), n_rude))
    return data
